// REQUIRES: native
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false hoist=false}' | filecheck %s --check-prefix=NUMPY

// A depthwise convolution where compiled kernels can be built (kernels.NativeWindow): one call
// of window.conv on the image, the filters and the output buffers as they are, with each
// operand's element offset and strides over the C loop's slots (i0..i3, j, r, p, q) in one
// constant tuple: no im2col copy, no scratch, no NumPy pass per window point. The image is
// read unpadded (unpad.py): no zeroed buffer, no copy into it; the tuple ends with the
// image's rows and columns, the first window's origin and the row and column steps.

builtin.module {
  func.func @depthwise(%x: tensor<2x3x8x8xf32>) -> tensor<2x3x4x4xf32> {
    %w = ge.const "w" : tensor<3x1x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 3 : i64} : (tensor<2x3x8x8xf32>, tensor<3x1x3x3xf32>) -> tensor<2x3x4x4xf32>
    func.return %y : tensor<2x3x4x4xf32>
  }
  // A channel multiplier of 2 is not depthwise (a filter dim): the GEMM.
  func.func @multiplier(%x: tensor<1x2x6x6xf32>) -> tensor<1x4x6x6xf32> {
    %w = ge.const "w2" : tensor<4x1x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x2x6x6xf32>, tensor<4x1x3x3xf32>) -> tensor<1x4x6x6xf32>
    func.return %y : tensor<1x4x6x6xf32>
  }
}

// CHECK-LABEL: # func @depthwise
// CHECK:       [[W:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NOT:   np.zeros(
// CHECK-NOT:   np.copyto(
// CHECK:       [[WV:v[0-9]+]] = [[W]].reshape(
// CHECK-NEXT:  [[OUT:v[0-9]+]] = np.empty(
// CHECK-NOT:   .fill(
// CHECK:       [[CONV:k[0-9]+]](a0, [[WV]], [[OUT]], [[PARAMS:k[0-9]+]])
// CHECK-NOT:   np.matmul(
// CHECK:       return
// CHECK-DAG:   #   [[CONV]] = <function conv>
// Fresh output; extents (-, batch 2, channels 3, rows 4, columns 4, -, 3, 3); the image's
// planes (8 x 8, 64 apart per channel); the filters per channel; the output; then the 8 x 8
// image, the first window at row and column -1 (the padding), rows 2 apart along the output
// rows and 1 along the window's, columns likewise.
// CHECK-DAG:   #   [[PARAMS]] = (0, 1, 2, 3, 4, 4, 1, 3, 3, 0, 0, 192, 64, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3, 1, 0, 0, 48, 16, 4, 1, 0, 0, 0, 8, 8, -1, -1, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 1)

// CHECK-LABEL: # func @multiplier
// CHECK:       np.matmul(
// CHECK-NOT:   <function conv>

// NUMPY-LABEL: # func @depthwise
// NUMPY:       np.matmul({{.*}}np.ascontiguousarray(
// NUMPY-NOT:   <function conv>
