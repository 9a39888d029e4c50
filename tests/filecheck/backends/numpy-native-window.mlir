// REQUIRES: native
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t numpy | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false}' | filecheck %s --check-prefix=NUMPY

// A depthwise convolution where compiled kernels can be built (kernels.NativeWindow): one call
// of window.conv on the padded image, the filters and the output buffers as they are, with
// each operand's element offset and strides over the C loop's slots (i0..i3, j, r, p, q) in
// one constant tuple: no im2col copy, no scratch, no NumPy pass per window point.

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
// CHECK-NEXT:  [[PAD:v[0-9]+]] = np.zeros(
// CHECK:       [[X:v[0-9]+]] = [[PAD]].reshape(
// CHECK-NEXT:  [[WV:v[0-9]+]] = [[W]].reshape(
// CHECK-NEXT:  [[OUT:v[0-9]+]] = np.empty(
// CHECK-NOT:   .fill(
// CHECK:       [[CONV:k[0-9]+]]([[X]], [[WV]], [[OUT]], [[PARAMS:k[0-9]+]])
// CHECK-NOT:   np.matmul(
// CHECK:       return
// CHECK-DAG:   #   [[CONV]] = <function conv>
// Fresh output; extents (-, batch 2, channels 3, rows 4, columns 4, -, 3, 3); the padded image
// [2, 3, 10, 10] read at rows and columns 2 apart; the filters per channel; the output.
// CHECK-DAG:   #   [[PARAMS]] = (0, 1, 2, 3, 4, 4, 1, 3, 3, 0, 0, 300, 100, 20, 2, 0, 10, 1, 0, 0, 0, 9, 0, 0, 0, 3, 1, 0, 0, 48, 16, 4, 1, 0, 0, 0)

// CHECK-LABEL: # func @multiplier
// CHECK:       np.matmul(
// CHECK-NOT:   <function conv>

// NUMPY-LABEL: # func @depthwise
// NUMPY:       np.matmul({{.*}}np.ascontiguousarray(
// NUMPY-NOT:   <function conv>
