// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false hoist=false}' | filecheck %s

// The NumPy form (native kernels off; with them: numpy-native-im2col.mlir). A padded
// convolution: the padded input is allocated zero-filled (np.zeros, no fill) and
// the input copied into its interior (a slice of it); the convolution is one GEMM of the filter
// matrix and the im2col copy of the padded input, written straight into the output. The
// filters and the output are their buffers reshaped (no strided views).

builtin.module {
  func.func @conv(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    %w = ge.const "w" : tensor<2x2x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    func.return %y : tensor<1x2x4x4xf32>
  }
}

// CHECK:      [[W:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: [[PAD:v[0-9]+]] = np.zeros([[PADDED:k[0-9]+]], {{k[0-9]+}})
// CHECK-NOT:  .fill(
// CHECK:      [[IN:v[0-9]+]] = [[PAD]]{{\[}}[[BOX:k[0-9]+]]{{\]}}
// CHECK-NEXT: np.copyto([[IN]], a0)
// CHECK-NEXT: [[Y:v[0-9]+]] = np.empty(
// CHECK-NOT:  .fill(
// CHECK:      [[WM:v[0-9]+]] = [[W]].reshape(
// CHECK-NEXT: [[COLS:v[0-9]+]] = _nd([[COLSHAPE:k[0-9]+]], {{k[0-9]+}}, [[PAD]],
// CHECK-NEXT: [[OUT:v[0-9]+]] = [[Y]].reshape(
// CHECK-NEXT: np.matmul([[WM]], np.ascontiguousarray([[COLS]]).reshape({{k[0-9]+}}), out=[[OUT]])
// CHECK-NEXT: return {{\[}}[[Y]]{{\]}}
// CHECK-DAG:  #   [[PADDED]] = (1, 2, 6, 6)
// CHECK-DAG:  #   [[BOX]] = (slice(0, 1, None), slice(0, 2, None), slice(1, 5, None), slice(1, 5, None))
// CHECK-DAG:  #   [[COLSHAPE]] = (2, 3, 3, 4, 4)
