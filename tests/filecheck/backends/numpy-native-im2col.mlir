// REQUIRES: native
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t numpy | filecheck %s --check-prefix=HOIST
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false}' | filecheck %s --check-prefix=NUMPY

// A convolution's im2col where compiled kernels can be built (kernels.PackedGemm): one call of
// window.pack reads the unpadded image (no zeroed buffer, no copy into it: unpad.py) and
// writes the [C*KH*KW, OH*OW] matrix into a view of one flat buffer per call, as large as the
// function's largest im2col; then the one GEMM of the filters with it, written straight into
// the output (a small one: the compiled gemm.matmul, not np.matmul). A second convolution with
// an im2col of the same shape packs into the same view.

builtin.module {
  func.func @two(%x: tensor<1x2x6x6xf32>) -> tensor<1x3x3x3xf32> {
    %w = ge.const "w" : tensor<3x2x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x6x6xf32>, tensor<3x2x3x3xf32>) -> tensor<1x3x6x6xf32>
    %w2 = ge.const "w2" : tensor<3x3x3x3xf32>
    %z = ge.conv2d %y, %w2 {strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x6x6xf32>, tensor<3x3x3x3xf32>) -> tensor<1x3x3x3xf32>
    func.return %z : tensor<1x3x3x3xf32>
  }
}

// CHECK-LABEL: # func @two
// CHECK-NOT:   np.zeros(
// CHECK-NOT:   ascontiguousarray
// CHECK:       [[Y:v[0-9]+]] = np.empty(
// CHECK-NOT:   .fill(
// CHECK:       [[FLAT:v[0-9]+]] = np.empty([[SIZE:k[0-9]+]], {{k[0-9]+}})
// CHECK-NEXT:  [[COLS:v[0-9]+]] = [[FLAT]].reshape([[COLSHAPE:k[0-9]+]])
// CHECK-NEXT:  [[PACK:k[0-9]+]](a0, [[COLS]], [[PARAMS:k[0-9]+]])
// CHECK-NEXT:  [[WM:v[0-9]+]] = {{v[0-9]+}}.reshape(
// CHECK-NEXT:  [[OUT:v[0-9]+]] = [[Y]].reshape(
// CHECK-NEXT:  [[MM:k[0-9]+]]([[WM]], [[COLS]], [[OUT]])
// The second convolution: stride 2, padded at the bottom and right only; a smaller im2col
// [C*KH*KW, OH*OW] (the image as the GEMM's right side, the output written as it is), a view
// of the start of the same flat buffer.
// CHECK:       [[COLS2:v[0-9]+]] = [[FLAT]][:{{k[0-9]+}}].reshape([[COLSHAPE2:k[0-9]+]])
// CHECK-NEXT:  [[PACK2:k[0-9]+]]([[Y]], [[COLS2]], [[PARAMS2:k[0-9]+]])
// CHECK-NEXT:  [[WM2:v[0-9]+]] = {{v[0-9]+}}.reshape(
// CHECK-NEXT:  [[OUT2:v[0-9]+]] = {{v[0-9]+}}.reshape(
// CHECK-NEXT:  [[MM2:k[0-9]+]]([[WM2]], [[COLS2]], [[OUT2]])
// CHECK-NOT:   np.copyto(
// CHECK:       return
// CHECK-DAG:   #   [[SIZE]] = (648,)
// CHECK-DAG:   #   [[COLSHAPE]] = (18, 36)
// CHECK-DAG:   #   [[COLSHAPE2]] = (27, 9)
// CHECK-DAG:   #   [[PACK]] = <function pack>
// CHECK-DAG:   #   [[PACK2]] = <function pack>
// CHECK-DAG:   #   [[MM]] = <function matmul>
// CHECK-DAG:   #   [[MM2]] = <function matmul>
// Not accumulated; slots (-, -, -, channels 2, window rows 3, columns 3, output rows 6,
// columns 6); the image's planes 36 apart; no weights; the packed matrix C-contiguous
// over the slots (the extent-1 slots' strides do not matter); then the 6 x 6 image, the first window at row and column -1, rows 1
// apart along the window's rows and the output's, columns likewise.
// CHECK-DAG:   #   [[PARAMS]] = (0, 1, 1, 1, 2, 3, 3, 6, 6, 0, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 648, 648, 648, 324, 108, 36, 6, 1, 6, 6, -1, -1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1)
// The second: rows and columns 2 apart along the output's, the first window at (0, 0).
// CHECK-DAG:   #   [[PARAMS2]] = (0, 1, 1, 1, 3, 3, 3, 3, 3, 0, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 243, 243, 243, 81, 27, 9, 3, 1, 6, 6, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0, 2)

// With hoisting (the default) the flat buffer and its views are made once per arena
// (`scratch`), and a call only packs into them.
// HOIST-LABEL: # func @two
// HOIST:       def scratch():
// HOIST-NEXT:  = np.empty(
// HOIST-NEXT:  [[FLAT:v[0-9]+]] = np.empty([[SIZE:k[0-9]+]], {{k[0-9]+}})
// HOIST-NEXT:  {{v[0-9]+}} = [[FLAT]].reshape(
// HOIST:       def graph(
// HOIST-NOT:   np.empty([[SIZE]],
// HOIST:       return [v
// HOIST:       #   [[SIZE]] = (648,)

// NUMPY-LABEL: # func @two
// NUMPY:       np.zeros(
// NUMPY:       np.matmul({{.*}}np.ascontiguousarray(
// NUMPY-NOT:   <function pack>
