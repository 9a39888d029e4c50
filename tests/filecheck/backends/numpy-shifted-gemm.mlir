// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s

// A stride-1 convolution with few filters for its channels (C = 16 >= 4 F, F = 4) on a large
// image (48 + 2 padding columns: 47 * 50 + 48 = 2398 elements per channel plane): no im2col
// copy; per window point one GEMM of the filters' [F, C] slice with the padded input's C wide
// rows (a view), the first into the wide scratch, the eight others through one more array
// and added; the kept columns copied out at the end.

builtin.module {
  func.func @bottleneck(%x: tensor<1x16x48x48xf32>) -> tensor<1x4x48x48xf32> {
    %w = ge.const "w" : tensor<4x16x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x16x48x48xf32>, tensor<4x16x3x3xf32>) -> tensor<1x4x48x48xf32>
    func.return %y : tensor<1x4x48x48xf32>
  }
  // As many filters as channels (ResNet): the im2col GEMM (its im2col packed by window.pack
  // where native kernels build: numpy-native-im2col.mlir).
  func.func @square(%x: tensor<1x16x48x48xf32>) -> tensor<1x16x48x48xf32> {
    %w = ge.const "w2" : tensor<16x16x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x16x48x48xf32>, tensor<16x16x3x3xf32>) -> tensor<1x16x48x48xf32>
    func.return %y : tensor<1x16x48x48xf32>
  }
}

// CHECK-LABEL: # func @bottleneck
// CHECK-NOT:   ascontiguousarray
// CHECK:       [[PAD:v[0-9]+]] = np.zeros(
// CHECK:       [[OUT:v[0-9]+]] = np.empty(
// CHECK-NEXT:  = {{k[0-9]+}}
// CHECK-NEXT:  [[WIDE:v[0-9]+]] = np.empty([[WSHAPE:k[0-9]+]], {{k[0-9]+}})
// CHECK-NEXT:  [[X0:v[0-9]+]] = _nd([[XSHAPE:k[0-9]+]], {{k[0-9]+}}, [[PAD]], {{k[0-9]+}}, [[XSTRIDES:k[0-9]+]])
// CHECK-NEXT:  [[W0:v[0-9]+]] = _nd([[FC:k[0-9]+]], {{k[0-9]+}}, {{v[0-9]+}}, {{k[0-9]+}}, [[WSTRIDES:k[0-9]+]])
// CHECK-NEXT:  np.matmul([[W0]], [[X0]], out=[[WIDE]])
// CHECK:       [[TMP:v[0-9]+]] = np.empty([[WSHAPE]], {{k[0-9]+}})
// CHECK-NEXT:  np.matmul({{v[0-9]+}}, {{v[0-9]+}}, out=[[TMP]])
// CHECK-NEXT:  np.add([[WIDE]], [[TMP]], out=[[WIDE]])
// CHECK-COUNT-7: np.add([[WIDE]], [[TMP]], out=[[WIDE]])
// CHECK-NEXT:  [[Y:v[0-9]+]] = [[OUT]].reshape(
// CHECK-NEXT:  np.copyto([[Y]], _nd({{k[0-9]+}}, {{k[0-9]+}}, [[WIDE]], {{k[0-9]+}}, [[KEPT:k[0-9]+]]))
// CHECK-NEXT:  return [[[OUT]]]
// CHECK-DAG:   #   [[WSHAPE]] = (4, 2398)
// CHECK-DAG:   #   [[XSHAPE]] = (16, 2398)
// CHECK-DAG:   #   [[XSTRIDES]] = (10000, 4)
// CHECK-DAG:   #   [[FC]] = (4, 16)
// CHECK-DAG:   #   [[WSTRIDES]] = (576, 36)
// CHECK-DAG:   #   [[KEPT]] = (0, 9592, 200, 4, 0, 0, 0)

// CHECK-LABEL: # func @square
// CHECK:       np.matmul(
// CHECK-NOT:   np.add(
// CHECK:       return
