// RUN: wrc-opt %s --split-input-file --verify-diagnostics | filecheck %s

// Verifier errors of the ge ops added for ONNX models; each CHECK is the exact diagnostic.

%0 = ge.data "x" index 0 : tensor<2xi32>
%1 = ge.sqrt %0 : tensor<2xi32>
// CHECK: ge.sqrt: expects a floating-point tensor, got tensor<2xi32>

// -----
%0 = ge.data "x" index 0 : tensor<2xi32>
%1 = ge.pow %0, %0 : (tensor<2xi32>, tensor<2xi32>) -> tensor<2xi32>
// CHECK: ge.pow: expects floating-point tensors, got i32

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.maximum %0, %0 : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<3x2xf32>
// CHECK: ge.maximum: result shape [3, 2] does not match the inferred shape [2, 3]

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.reduce_max %0 {axes = array<i64: 2>, keepdims = 0 : i64} : tensor<2x3xf32> -> tensor<2xf32>
// CHECK: ge.reduce_max: axis 2 is out of range for rank 2

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.cast %0 : tensor<2x3xf32> -> tensor<3x2xi32>
// CHECK: ge.cast: result shape [3, 2] does not match the inferred shape [2, 3]

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.where %0, %0, %0 : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK: ge.where: the condition must be an i1 tensor, got tensor<2x3xf32>

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.data "y" index 1 : tensor<2x4xf32>
%2 = ge.concat %0, %1 {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x4xf32>) -> tensor<4x3xf32>
// CHECK: ge.concat: shapes [2, 3] and [2, 4] differ outside axis 0

// -----
%0 = ge.data "x" index 0 : tensor<2x3xf32>
%1 = ge.data "y" index 1 : tensor<2x3xi32>
%2 = ge.concat %0, %1 {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x3xi32>) -> tensor<2x6xf32>
// CHECK: ge.concat: element types f32 and i32 differ

// -----
%0 = ge.data "x" index 0 : tensor<4xf32>
%1 = ge.slice %0 {starts = array<i64: 1>, steps = array<i64: 2>} : tensor<4xf32> -> tensor<3xf32>
// CHECK: ge.slice: slice of 3 elements from 1 by 2 exceeds dim size 4 of [4]

// -----
%0 = ge.data "x" index 0 : tensor<4xf32>
%1 = ge.slice %0 {starts = array<i64: 0>, steps = array<i64: 0>} : tensor<4xf32> -> tensor<1xf32>
// CHECK: ge.slice: starts [0] must be >= 0 and steps [0] > 0

// -----
%0 = ge.data "x" index 0 : tensor<3x2xf32>
%1 = ge.expand %0 : tensor<3x2xf32> -> tensor<3x3xf32>
// CHECK: ge.expand: shapes [3, 2] and [3, 3] do not broadcast

// -----
%0 = ge.data "x" index 0 : tensor<3x2xf32>
%1 = ge.data "i" index 1 : tensor<2xf32>
%2 = ge.gather %0, %1 {axis = 0 : i64} : (tensor<3x2xf32>, tensor<2xf32>) -> tensor<2x2xf32>
// CHECK: ge.gather: indices must be i32 or i64, got f32

// -----
%0 = ge.data "x" index 0 : tensor<3x2xf32>
%1 = ge.data "i" index 1 : tensor<2xi64>
%2 = ge.gather %0, %1 {axis = 0 : i64} : (tensor<3x2xf32>, tensor<2xi64>) -> tensor<2x3xf32>
// CHECK: ge.gather: result shape [2, 3] does not match the inferred shape [2, 2]
