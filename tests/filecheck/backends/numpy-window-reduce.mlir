// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false hoist=false}' | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{window-kernels=false native=false hoist=false}' | filecheck %s --check-prefix=BEFORE

// Reductions over small sliding windows run as one ufunc per window point over views of the
// input shifted to that point, combined into the output in place: no strided .reduce over
// a 6-d window view, no im2col copy. (The NumPy forms: where a C compiler is at hand, depthwise
// convolutions are one compiled call instead, numpy-native-window.mlir.)

builtin.module {
  // A 3x3 max pool, stride 2, separable: the padded input's three window rows combined over
  // the output rows into a scratch of 7 columns (every column a window reads), then that
  // scratch's three window columns (every other column) into the output, whose -inf fill
  // is elided: 4 ufunc calls instead of 8.
  func.func @pool(%x: tensor<1x2x6x6xf32>) -> tensor<1x2x3x3xf32> {
    %y = ge.max_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 1, 1>} : tensor<1x2x6x6xf32> -> tensor<1x2x3x3xf32>
    func.return %y : tensor<1x2x3x3xf32>
  }
  // A depthwise convolution (groups = channels), stride 1: per point, the shifted input
  // times the per-channel weight over wide rows (48 + 2 padding columns: 47 * 50 + 48 =
  // 2398 contiguous elements per channel), accumulated through one scratch array; the kept
  // columns are copied out at the end.
  func.func @depthwise(%x: tensor<1x3x48x48xf32>) -> tensor<1x3x48x48xf32> {
    %w = ge.const "w" : tensor<3x1x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 3 : i64} : (tensor<1x3x48x48xf32>, tensor<3x1x3x3xf32>) -> tensor<1x3x48x48xf32>
    func.return %y : tensor<1x3x48x48xf32>
  }
  // On a small image (fewer than kernels.MIN_WIDE_ROWS elements per row plane) the same
  // convolution is its im2col GEMM: fewer NumPy calls.
  func.func @small_depthwise(%x: tensor<1x3x6x6xf32>) -> tensor<1x3x6x6xf32> {
    %w = ge.const "w" : tensor<3x1x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 3 : i64} : (tensor<1x3x6x6xf32>, tensor<3x1x3x3xf32>) -> tensor<1x3x6x6xf32>
    func.return %y : tensor<1x3x6x6xf32>
  }
  // A channel multiplier of 2 is a GEMM per channel group, as before.
  func.func @multiplier(%x: tensor<1x2x6x6xf32>) -> tensor<1x4x6x6xf32> {
    %w = ge.const "w2" : tensor<4x1x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x2x6x6xf32>, tensor<4x1x3x3xf32>) -> tensor<1x4x6x6xf32>
    func.return %y : tensor<1x4x6x6xf32>
  }
}

// CHECK-LABEL: # func @pool
// CHECK:       [[PAD:v[0-9]+]] = np.empty(
// CHECK:       [[OUT:v[0-9]+]] = {{v[0-9]+}}.reshape(
// CHECK-NOT:   .fill(
// CHECK:       [[R0:v[0-9]+]] = _nd([[ROWS:k[0-9]+]], {{k[0-9]+}}, [[PAD]], {{k[0-9]+}}, [[RSTRIDES:k[0-9]+]])
// CHECK-NEXT:  [[R1:v[0-9]+]] = _nd([[ROWS]], {{k[0-9]+}}, [[PAD]], {{k[0-9]+}}, [[RSTRIDES]])
// CHECK-NEXT:  [[R2:v[0-9]+]] = _nd([[ROWS]], {{k[0-9]+}}, [[PAD]], {{k[0-9]+}}, [[RSTRIDES]])
// CHECK-NEXT:  [[S:v[0-9]+]] = np.empty([[ROWS]], {{k[0-9]+}})
// CHECK-NEXT:  np.maximum([[R0]], [[R1]], out=[[S]])
// CHECK-NEXT:  np.maximum([[S]], [[R2]], out=[[S]])
// CHECK-NEXT:  [[C0:v[0-9]+]] = _nd([[COLS:k[0-9]+]], {{k[0-9]+}}, [[S]], {{k[0-9]+}}, [[CSTRIDES:k[0-9]+]])
// CHECK-NEXT:  [[C1:v[0-9]+]] = _nd([[COLS]], {{k[0-9]+}}, [[S]], {{k[0-9]+}}, [[CSTRIDES]])
// CHECK-NEXT:  [[C2:v[0-9]+]] = _nd([[COLS]], {{k[0-9]+}}, [[S]], {{k[0-9]+}}, [[CSTRIDES]])
// CHECK-NEXT:  np.maximum([[C0]], [[C1]], out=[[OUT]])
// CHECK-NEXT:  np.maximum([[OUT]], [[C2]], out=[[OUT]])
// CHECK-NOT:   .reduce(
// CHECK:       return
// CHECK-DAG:   #   [[ROWS]] = (1, 2, 3, 7, 1, 1)
// CHECK-DAG:   #   [[RSTRIDES]] = (0, 256, 64, 4, 0, 0)
// CHECK-DAG:   #   [[COLS]] = (1, 2, 3, 3, 1, 1)
// CHECK-DAG:   #   [[CSTRIDES]] = (168, 84, 28, 8, 4, 4)

// CHECK-LABEL: # func @depthwise
// CHECK-NOT:   ascontiguousarray
// CHECK:       = np.zeros(
// CHECK-NEXT:  = {{k[0-9]+}}
// CHECK:       = np.empty(
// CHECK:       [[WIDE:v[0-9]+]] = np.empty([[WIDESHAPE:k[0-9]+]], {{k[0-9]+}})
// CHECK-NEXT:  [[X0:v[0-9]+]] = _nd([[WIDESHAPE]], {{k[0-9]+}}, {{v[0-9]+}}, {{k[0-9]+}}, [[ROWS:k[0-9]+]])
// CHECK-NEXT:  [[W0:v[0-9]+]] = _nd({{k[0-9]+}}, {{k[0-9]+}}, {{v[0-9]+}}, {{k[0-9]+}}, {{k[0-9]+}})
// CHECK-NEXT:  np.multiply([[X0]], [[W0]], out=[[WIDE]])
// CHECK:       [[TMP:v[0-9]+]] = np.empty([[WIDESHAPE]], {{k[0-9]+}})
// CHECK-NEXT:  np.multiply({{v[0-9]+}}, {{v[0-9]+}}, out=[[TMP]])
// CHECK-NEXT:  np.add([[WIDE]], [[TMP]], out=[[WIDE]])
// CHECK-COUNT-7: np.add([[WIDE]], [[TMP]], out=[[WIDE]])
// CHECK-NEXT:  [[Y:v[0-9]+]] = {{v[0-9]+}}.reshape(
// CHECK-NEXT:  np.copyto([[Y]], _nd({{k[0-9]+}}, {{k[0-9]+}}, [[WIDE]], {{k[0-9]+}}, [[KEPT:k[0-9]+]]))
// CHECK-NOT:   np.matmul(
// CHECK:       return
// CHECK-DAG:   #   [[WIDESHAPE]] = (1, 3, 1, 2398, 1, 1, 1)
// CHECK-DAG:   #   [[ROWS]] = (0, 10000, 0, 4, 0, 0, 0)
// CHECK-DAG:   #   [[KEPT]] = (28776, 9592, 9592, 200, 4, 4, 4, 4)

// CHECK-LABEL: # func @small_depthwise
// CHECK:       np.matmul({{.*}}np.ascontiguousarray(
// CHECK-NOT:   np.multiply(

// CHECK-LABEL: # func @multiplier
// CHECK:       np.matmul(

// Without window kernels: a strided .reduce over the window view, and im2col GEMMs.
// BEFORE-LABEL: # func @pool
// BEFORE:       np.maximum.reduce(
// BEFORE-LABEL: # func @depthwise
// BEFORE:       np.matmul({{.*}}np.ascontiguousarray(
