// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false hoist=false}' | filecheck %s

// Fewer NumPy calls and temporaries: a chain of reshapes is one reshape of its source, and
// a reshaped view of an array is made once (the row sums reuse the row maxima's view); erf
// writes its result with `out=` (here in place) instead of returning a temporary that is
// then copied; softmax's `exp(x - max)` computes `x - max` into the output, then exp in
// place (no temporary for the difference), and its row sums are one product with a column of
// ones (cheaper than `add.reduce` on small rows). A comparison that is one ufunc writes with
// `out=`; a copy onto the array it copies from (the cast of a dead mask, which took the
// mask's array) is no code.

builtin.module {
  func.func @f() -> tensor<4x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.const "w" : tensor<2x3xf32>
    %f = ge.reshape %x : tensor<2x4xf32> -> tensor<8xf32>
    %r = ge.reshape %f : tensor<8xf32> -> tensor<4x2xf32>
    %m = ge.matmul %r, %w : (tensor<4x2xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>
    %e = ge.erf %m : tensor<4x3xf32>
    %s = ge.softmax %e {axis = -1 : i64} : tensor<4x3xf32>
    func.return %s : tensor<4x3xf32>
  }
  func.func @mask() -> tensor<2x3xi1> {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %y = ge.data "y" index 1 : tensor<2x3xf32>
    %l = ge.less %x, %y : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xi1>
    %g = ge.greater %x, %y : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xi1>
    %a = ge.logical_or %l, %g : (tensor<2x3xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
    %c = ge.cast %a : tensor<2x3xi1> -> tensor<2x3xi1>
    func.return %c : tensor<2x3xi1>
  }
}

// CHECK:      # func @f
// CHECK:      [[W:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: [[R:v[0-9]+]] = a0.reshape([[SHAPE:k[0-9]+]])
// CHECK-NOT:  .reshape(
// CHECK:      np.matmul([[R]], [[W]], out=[[M:v[0-9]+]])
// CHECK-NEXT: [[E:v[0-9]+]] = [[M]]
// CHECK-NEXT: [[ERF:k[0-9]+]]([[M]], out=[[E]])
// CHECK-NOT:  np.copyto(
// CHECK:      [[MAX:v[0-9]+]] = {{v[0-9]+}}.reshape({{k[0-9]+}})
// CHECK-NEXT: np.maximum.reduce([[E]], axis={{k[0-9]+}}, keepdims=True, out=[[MAX]])
// CHECK-NEXT: [[X:v[0-9]+]] = [[M]]
// CHECK-NEXT: np.subtract([[E]], [[MAX]], out=[[X]])
// CHECK-NEXT: np.exp([[X]], out=[[X]])
// CHECK-NOT:  np.copyto(
// CHECK-NOT:  .reshape(
// CHECK:      np.matmul([[X]], [[ONES:k[0-9]+]], out=[[MAX]])
// CHECK-NOT:  .reshape(
// CHECK:      np.divide([[X]], [[MAX]], out=
// CHECK:      #   [[SHAPE]] = (4, 2)
// CHECK:      #   [[ERF]] = <function erf>
// CHECK:      #   [[ONES]] = array<float32[3, 1]>

// CHECK:      # func @mask
// CHECK:      [[L:v[0-9]+]] = np.empty(
// CHECK-NEXT: np.less(a0, a1, out=[[L]])
// CHECK-NEXT: [[G:v[0-9]+]] = np.empty(
// CHECK-NEXT: np.greater(a0, a1, out=[[G]])
// CHECK-NEXT: [[A:v[0-9]+]] = [[L]]
// CHECK-NEXT: np.bitwise_or([[L]], [[G]], out=[[A]])
// CHECK-NEXT: [[C:v[0-9]+]] = [[L]]
// CHECK-NEXT: return {{\[}}[[C]]{{\]}}
