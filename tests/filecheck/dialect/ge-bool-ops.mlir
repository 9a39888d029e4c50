// RUN: wrc-opt %s | wrc-opt | filecheck %s
// RUN: %roundtrip | filecheck %s

// The bool (i1) ops: comparisons give i1 from numbers, logic ops take and give i1
// (NumPy broadcasting), is_nan/is_inf test floats; with them sign and the integer
// remainders floor_mod / fmod. Exact custom syntax, generic round trip.

builtin.module {
  func.func @bool_ops() -> (tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x1xi1>, tensor<2x3xi1>, tensor<2x3xi1>) {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %y = ge.data "y" index 1 : tensor<3xf32>
    %i = ge.data "i" index 2 : tensor<1x3xi64>
    %j = ge.data "j" index 3 : tensor<2x3xi64>
    %m = ge.data "m" index 4 : tensor<2x1xi1>
    %eq = ge.equal %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
    %lt = ge.less %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
    %le = ge.less_equal %i, %j : (tensor<1x3xi64>, tensor<2x3xi64>) -> tensor<2x3xi1>
    %gt = ge.greater %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
    %ge = ge.greater_equal %i, %j : (tensor<1x3xi64>, tensor<2x3xi64>) -> tensor<2x3xi1>
    %and = ge.logical_and %m, %lt : (tensor<2x1xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
    %or = ge.logical_or %m, %gt : (tensor<2x1xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
    %xor = ge.logical_xor %eq, %le : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
    %beq = ge.equal %m, %and : (tensor<2x1xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
    %not = ge.logical_not %m : tensor<2x1xi1>
    %nan = ge.is_nan %x : tensor<2x3xf32> -> tensor<2x3xi1>
    %inf = ge.is_inf %x : tensor<2x3xf32> -> tensor<2x3xi1>
    func.return %eq, %lt, %le, %gt, %ge, %and, %or, %xor, %beq, %not, %nan, %inf : tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x1xi1>, tensor<2x3xi1>, tensor<2x3xi1>
  }
  func.func @sign_mod() -> (tensor<2x3xf32>, tensor<1x3xi64>, tensor<2x3xi64>, tensor<2x3xi64>) {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %i = ge.data "i" index 1 : tensor<1x3xi64>
    %j = ge.data "j" index 2 : tensor<2x3xi64>
    %s = ge.sign %x : tensor<2x3xf32>
    %si = ge.sign %i : tensor<1x3xi64>
    %m = ge.floor_mod %i, %j : (tensor<1x3xi64>, tensor<2x3xi64>) -> tensor<2x3xi64>
    %f = ge.fmod %j, %i : (tensor<2x3xi64>, tensor<1x3xi64>) -> tensor<2x3xi64>
    func.return %s, %si, %m, %f : tensor<2x3xf32>, tensor<1x3xi64>, tensor<2x3xi64>, tensor<2x3xi64>
  }
}

// CHECK-LABEL: func.func @bool_ops()
// CHECK:      %eq = ge.equal %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
// CHECK-NEXT: %lt = ge.less %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
// CHECK-NEXT: %le = ge.less_equal %i, %j : (tensor<1x3xi64>, tensor<2x3xi64>) -> tensor<2x3xi1>
// CHECK-NEXT: %gt = ge.greater %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
// CHECK-NEXT: %ge = ge.greater_equal %i, %j : (tensor<1x3xi64>, tensor<2x3xi64>) -> tensor<2x3xi1>
// CHECK-NEXT: %and = ge.logical_and %m, %lt : (tensor<2x1xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
// CHECK-NEXT: %or = ge.logical_or %m, %gt : (tensor<2x1xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
// CHECK-NEXT: %xor = ge.logical_xor %eq, %le : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
// CHECK-NEXT: %beq = ge.equal %m, %and : (tensor<2x1xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
// CHECK-NEXT: %not = ge.logical_not %m : tensor<2x1xi1>
// CHECK-NEXT: %nan = ge.is_nan %x : tensor<2x3xf32> -> tensor<2x3xi1>
// CHECK-NEXT: %inf = ge.is_inf %x : tensor<2x3xf32> -> tensor<2x3xi1>

// CHECK-LABEL: func.func @sign_mod()
// CHECK:      %s = ge.sign %x : tensor<2x3xf32>
// CHECK-NEXT: %si = ge.sign %i : tensor<1x3xi64>
// CHECK-NEXT: %m = ge.floor_mod %i, %j : (tensor<1x3xi64>, tensor<2x3xi64>) -> tensor<2x3xi64>
// CHECK-NEXT: %f = ge.fmod %j, %i : (tensor<2x3xi64>, tensor<1x3xi64>) -> tensor<2x3xi64>
