// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t numpy | filecheck %s

// A lowered gather (`library_call = "wrc_gather"`) takes rows with np.take, no one-hot
// reduction over the vocabulary; its zero fill is elided (the take writes every element).
// Indices all in [-5, 5) are taken straight into the output (NumPy's take raises IndexError
// otherwise); else the out-of-range ones give zeros.

builtin.module {
  func.func @g() -> tensor<2x3x4xf32> {
    %i = ge.data "i" index 0 : tensor<2x3xi64>
    %d = ge.const "d" : tensor<5x4xf32>
    %y = ge.gather %d, %i {axis = 0 : i64} : (tensor<5x4xf32>, tensor<2x3xi64>) -> tensor<2x3x4xf32>
    func.return %y : tensor<2x3x4xf32>
  }
}

// CHECK:      # func @g
// CHECK:      [[D:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NOT:  .fill(
// CHECK:      [[Y:v[0-9]+]] = np.empty(
// CHECK-NOT:  .fill(
// CHECK:      try:
// CHECK-NEXT:     np.take([[D]], a0, axis=[[AXIS:k[0-9]+]], out=[[Y]])
// CHECK-NEXT: except IndexError:
// CHECK-NEXT:     [[T:v[0-9]+]] = np.where(a0 < 0, a0 + [[SIZE:k[0-9]+]], a0)
// CHECK-NEXT:     [[OK:v[0-9]+]] = np.logical_and([[T]] >= 0, [[T]] < [[SIZE]])
// CHECK-NEXT:     np.copyto([[Y]], np.where([[OK]].reshape({{k[0-9]+}}), np.take([[D]], np.where([[OK]], [[T]], 0), axis=[[AXIS]]), {{k[0-9]+}}))
// CHECK-NEXT: return {{\[}}[[Y]]{{\]}}
// CHECK-DAG:  #   [[SIZE]] = 5
// CHECK-DAG:  #   [[AXIS]] = 0
