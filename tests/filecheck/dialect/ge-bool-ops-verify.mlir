// RUN: wrc-opt %s --split-input-file --verify-diagnostics | filecheck %s

// Verifier errors of the bool (i1) ops, sign and the integer remainders; each CHECK is the
// exact diagnostic.

%0 = ge.data "m" index 0 : tensor<2xi1>
%1 = ge.less %0, %0 : (tensor<2xi1>, tensor<2xi1>) -> tensor<2xi1>
// CHECK: ge.less: expects numeric tensors, got i1 (bools compare with ge.equal)

// -----
%0 = ge.data "x" index 0 : tensor<2xf32>
%1 = ge.equal %0, %0 : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
// CHECK: ge.equal: result element type f32 should be i1

// -----
%0 = ge.data "x" index 0 : tensor<2xf32>
%1 = ge.data "y" index 1 : tensor<3xf32>
%2 = ge.greater %0, %1 : (tensor<2xf32>, tensor<3xf32>) -> tensor<2xi1>
// CHECK: ge.greater: shapes [2] and [3] do not broadcast

// -----
%0 = ge.data "x" index 0 : tensor<2xf32>
%1 = ge.data "y" index 1 : tensor<2xi32>
%2 = ge.less_equal %0, %1 : (tensor<2xf32>, tensor<2xi32>) -> tensor<2xi1>
// CHECK: ge.less_equal: element types f32 and i32 differ

// -----
%0 = ge.data "x" index 0 : tensor<2xf32>
%1 = ge.data "m" index 1 : tensor<2xi1>
%2 = ge.logical_or %1, %0 : (tensor<2xi1>, tensor<2xf32>) -> tensor<2xi1>
// CHECK: ge.logical_or: expects bool (i1) tensors, got tensor<2xf32>

// -----
%0 = ge.data "m" index 0 : tensor<2x3xi1>
%1 = ge.logical_and %0, %0 : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<3x2xi1>
// CHECK: ge.logical_and: result shape [3, 2] does not match the inferred shape [2, 3]

// -----
%0 = ge.data "x" index 0 : tensor<2xi32>
%1 = ge.logical_not %0 : tensor<2xi32>
// CHECK: ge.logical_not: expects bool (i1) tensors, got tensor<2xi32>

// -----
%0 = ge.data "x" index 0 : tensor<2xi32>
%1 = ge.is_nan %0 : tensor<2xi32> -> tensor<2xi1>
// CHECK: ge.is_nan: expects a floating-point tensor, got tensor<2xi32>

// -----
%0 = ge.data "x" index 0 : tensor<2xf32>
%1 = ge.is_inf %0 : tensor<2xf32> -> tensor<2xf32>
// CHECK: ge.is_inf: result element type f32 should be i1

// -----
%0 = ge.data "m" index 0 : tensor<2xi1>
%1 = ge.sign %0 : tensor<2xi1>
// CHECK: ge.sign: expects a numeric tensor, got tensor<2xi1>

// -----
%0 = ge.data "x" index 0 : tensor<2xf32>
%1 = ge.floor_mod %0, %0 : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
// CHECK: ge.floor_mod: expects integer tensors, got f32

// -----
%0 = ge.data "m" index 0 : tensor<2xi1>
%1 = ge.fmod %0, %0 : (tensor<2xi1>, tensor<2xi1>) -> tensor<2xi1>
// CHECK: ge.fmod: expects integer tensors, got i1
