// REQUIRES: native
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false hoist=false}' | filecheck %s --check-prefix=NUMPY

// Max and sum pools where compiled kernels can be built (kernels.NativeWindow, op "max" /
// "sum"): one call of window.pool on the unpadded image and the output, instead of a
// padded copy and KH + KW separable ufunc calls. The padding reads as the combiner's
// identity (-inf for the max, 0 for the sum: unpad.py); an average pool divides the sums
// afterwards, as before (a call of the fused-chain machine: a constant divisor, fuse.py).

builtin.module {
  func.func @maxpool(%x: tensor<1x3x9x9xf32>) -> tensor<1x3x5x5xf32> {
    %y = ge.max_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>} : tensor<1x3x9x9xf32> -> tensor<1x3x5x5xf32>
    func.return %y : tensor<1x3x5x5xf32>
  }
  func.func @avgpool(%x: tensor<1x3x9x9xf32>) -> tensor<1x3x9x9xf32> {
    %y = ge.avg_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, count_include_pad = 1 : i64} : tensor<1x3x9x9xf32> -> tensor<1x3x9x9xf32>
    func.return %y : tensor<1x3x9x9xf32>
  }
}

// CHECK-LABEL: # func @maxpool
// CHECK-NOT:   .fill(
// CHECK-NOT:   np.copyto(
// CHECK:       [[POOL:k[0-9]+]](a0, [[OUT:v[0-9]+]], [[MAX:k[0-9]+]], [[PARAMS:k[0-9]+]])
// CHECK-NOT:   np.maximum(
// CHECK:       return {{\[}}[[OUT]]{{\]}}
// CHECK-DAG:   #   [[POOL]] = <function pool>
// CHECK-DAG:   #   [[MAX]] = 'max'
// Fresh output; extents (-, -, channels 3, rows 5, columns 5, -, 3, 3); the image's planes
// (81 apart); no filters; the output; the 9 x 9 image from row and column -1, steps of 2
// along the output and 1 along the window.
// CHECK-DAG:   #   [[PARAMS]] = (0, 1, 1, 3, 5, 5, 1, 3, 3, 0, 0, 0, 81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 5, 1, 0, 0, 0, 9, 9, -1, -1, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 1)

// CHECK-LABEL: # func @avgpool
// CHECK-NOT:   np.zeros(
// CHECK:       [[POOL:k[0-9]+]](a0, [[OUT:v[0-9]+]], [[SUM:k[0-9]+]], {{k[0-9]+}})
// CHECK-NOT:   np.add(
// CHECK:       {{k[0-9]+}}({{k[0-9]+}}, [[OUT]], {{v[0-9]+}})
// CHECK-DAG:   #   [[SUM]] = 'sum'

// NUMPY-LABEL: # func @maxpool
// NUMPY:       .fill(
// NUMPY:       np.copyto(
// NUMPY:       np.maximum(
// NUMPY-NOT:   <function pool>
// NUMPY-LABEL: # func @avgpool
// NUMPY:       np.zeros(
// NUMPY:       np.add(
// NUMPY-NOT:   <function pool>
