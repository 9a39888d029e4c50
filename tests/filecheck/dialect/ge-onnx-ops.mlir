// RUN: wrc-opt %s | wrc-opt | filecheck %s
// RUN: %roundtrip | filecheck %s

// The ge ops added for ONNX models (wrc.onnx) parse, print in their custom syntax (exact
// text checked) and survive a trip through the generic form.

builtin.module {
  func.func @onnx_ops() -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2xf32>, tensor<2x3xi32>, tensor<2x3xf32>, tensor<4x3xf32>, tensor<1x2xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>) {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %y = ge.data "y" index 1 : tensor<3xf32>
    %c = ge.data "c" index 2 : tensor<2x1xi1>
    %i = ge.data "i" index 3 : tensor<2x2xi64>
    %s = ge.sqrt %x : tensor<2x3xf32>
    %l = ge.log %x : tensor<2x3xf32>
    %n = ge.neg %x : tensor<2x3xf32>
    %a = ge.abs %x : tensor<2x3xf32>
    %e = ge.erf %x : tensor<2x3xf32>
    %p = ge.pow %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %mx = ge.maximum %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %mn = ge.minimum %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %r = ge.reduce_max %x {axes = array<i64: 1>, keepdims = 0 : i64} : tensor<2x3xf32> -> tensor<2xf32>
    %k = ge.cast %x : tensor<2x3xf32> -> tensor<2x3xi32>
    %w = ge.where %c, %x, %y : (tensor<2x1xi1>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %cc = ge.concat %x, %x {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>
    %sl = ge.slice %x {starts = array<i64: 1, 0>, steps = array<i64: 1, 2>} : tensor<2x3xf32> -> tensor<1x2xf32>
    %ex = ge.expand %y : tensor<3xf32> -> tensor<2x2x3xf32>
    %g = ge.gather %x, %i {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x2xi64>) -> tensor<2x2x3xf32>
    func.return %s, %l, %n, %a, %e, %p, %mx, %mn, %r, %k, %w, %cc, %sl, %ex, %g : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2xf32>, tensor<2x3xi32>, tensor<2x3xf32>, tensor<4x3xf32>, tensor<1x2xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>
  }
}

// CHECK-LABEL: func.func @onnx_ops()
// CHECK: %s = ge.sqrt %x : tensor<2x3xf32>
// CHECK-NEXT: %l = ge.log %x : tensor<2x3xf32>
// CHECK-NEXT: %n = ge.neg %x : tensor<2x3xf32>
// CHECK-NEXT: %a = ge.abs %x : tensor<2x3xf32>
// CHECK-NEXT: %e = ge.erf %x : tensor<2x3xf32>
// CHECK-NEXT: %p = ge.pow %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: %mx = ge.maximum %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: %mn = ge.minimum %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: %r = ge.reduce_max %x {axes = array<i64: 1>, keepdims = 0 : i64} : tensor<2x3xf32> -> tensor<2xf32>
// CHECK-NEXT: %k = ge.cast %x : tensor<2x3xf32> -> tensor<2x3xi32>
// CHECK-NEXT: %w = ge.where %c, %x, %y : (tensor<2x1xi1>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT: %cc = ge.concat %x, %x {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT: %sl = ge.slice %x {starts = array<i64: 1, 0>, steps = array<i64: 1, 2>} : tensor<2x3xf32> -> tensor<1x2xf32>
// CHECK-NEXT: %ex = ge.expand %y : tensor<3xf32> -> tensor<2x2x3xf32>
// CHECK-NEXT: %g = ge.gather %x, %i {axis = 0 : i64} : (tensor<2x3xf32>, tensor<2x2xi64>) -> tensor<2x2x3xf32>
