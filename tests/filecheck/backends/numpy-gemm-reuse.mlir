// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false hoist=false}' | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false reuse-buffers=false hoist=false}' | filecheck %s --check-prefix=NOREUSE

// matmul → +bias → relu: the zero fill before the multiply-accumulate is elided (the GEMM
// writes with out=), and the add and the relu run in place in the GEMM's buffer (the
// matmul's result is dead once the add has read it).

builtin.module {
  func.func @mlp(%x: tensor<2x4xf32>, %w: tensor<4x3xf32>, %b: tensor<3xf32>) -> tensor<2x3xf32> {
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %z = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %r = ge.relu %z : tensor<2x3xf32>
    func.return %r : tensor<2x3xf32>
  }
}

// CHECK:      # func @mlp
// CHECK-NEXT: def graph(G, a0, a1, a2):
// CHECK-NOT:  .fill(
// CHECK:      [[MM:v[0-9]+]] = np.empty([[SHAPE:k[0-9]+]], [[F32:k[0-9]+]])
// CHECK-NOT:  .fill(
// CHECK:      np.matmul(a0, a1, out=[[MM]])
// CHECK-NEXT: [[SUM:v[0-9]+]] = [[MM]]
// CHECK-NEXT: np.add([[MM]], a2, out=[[SUM]])
// CHECK-NEXT: [[RELU:v[0-9]+]] = [[MM]]
// CHECK-NEXT: np.maximum([[SUM]], {{k[0-9]+}}, out=[[RELU]])
// CHECK-NEXT: return {{\[}}[[RELU]]{{\]}}
// CHECK-NOT:  np.matmul(
// CHECK-DAG:  #   [[SHAPE]] = (2, 3)
// CHECK-DAG:  #   [[F32]] = dtype('float32')

// Without reuse, each result has an array of its own.
// NOREUSE:      [[MM:v[0-9]+]] = np.empty(
// NOREUSE:      np.matmul(a0, a1, out=[[MM]])
// NOREUSE-NEXT: [[SUM:v[0-9]+]] = np.empty(
// NOREUSE-NEXT: np.add([[MM]], a2, out=[[SUM]])
// NOREUSE-NEXT: [[RELU:v[0-9]+]] = np.empty(
// NOREUSE-NEXT: np.maximum([[SUM]], {{k[0-9]+}}, out=[[RELU]])
