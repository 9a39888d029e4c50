// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{pool-min-bytes=0 native=false hoist=false}' | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s --check-prefix=SMALL

// Buffers of different shapes share a dead temporary's array (best fit): %a's array is
// free once %b has read it, so %c (fewer elements) takes it; the array is then a flat one
// and each of its buffers a view of its start. %b's array is free by %d: %d takes it,
// grown to %d's size. The relu runs in place: a buffer of the shape of the array's last
// one is that buffer's view. The result takes no pooled array (it gets an array of its own).
// By default only buffers of pool-min-bytes (128 KiB) or more are pooled: these small ones
// are each an `np.empty` of their own shape (one call instead of a slice and a reshape).
// (The GEMMs are np.matmul, or where compiled kernels build, gemm.matmul: small ones.)

builtin.module {
  func.func @chain(%x: tensor<2x4xf32>, %w1: tensor<4x8xf32>, %w2: tensor<8x16xf32>, %w3: tensor<16x4xf32>,
                   %w4: tensor<4x24xf32>, %w5: tensor<24x4xf32>) -> tensor<2x4xf32> {
    %a = ge.matmul %x, %w1 : (tensor<2x4xf32>, tensor<4x8xf32>) -> tensor<2x8xf32>
    %b = ge.matmul %a, %w2 : (tensor<2x8xf32>, tensor<8x16xf32>) -> tensor<2x16xf32>
    %c = ge.matmul %b, %w3 : (tensor<2x16xf32>, tensor<16x4xf32>) -> tensor<2x4xf32>
    %r = ge.relu %c : tensor<2x4xf32>
    %d = ge.matmul %r, %w4 : (tensor<2x4xf32>, tensor<4x24xf32>) -> tensor<2x24xf32>
    %e = ge.matmul %d, %w5 : (tensor<2x24xf32>, tensor<24x4xf32>) -> tensor<2x4xf32>
    func.return %e : tensor<2x4xf32>
  }
}

// CHECK:      def graph(G, a0, a1, a2, a3, a4, a5):
// CHECK:      [[FA:v[0-9]+]] = np.empty([[NA:k[0-9]+]], [[F32:k[0-9]+]])
// CHECK-NEXT: [[A:v[0-9]+]] = [[FA]].reshape([[SA:k[0-9]+]])
// CHECK:      np.matmul(a0, a1, out=[[A]])
// CHECK:      [[FB:v[0-9]+]] = np.empty([[NB:k[0-9]+]], [[F32]])
// CHECK-NEXT: [[B:v[0-9]+]] = [[FB]][:[[N32:k[0-9]+]]].reshape([[SB:k[0-9]+]])
// CHECK:      np.matmul([[A]], a2, out=[[B]])
// CHECK:      [[C:v[0-9]+]] = [[FA]][:[[N8:k[0-9]+]]].reshape([[SC:k[0-9]+]])
// CHECK:      np.matmul([[B]], a3, out=[[C]])
// CHECK-NEXT: [[R:v[0-9]+]] = [[C]]
// CHECK-NEXT: np.maximum([[C]], {{k[0-9]+}}, out=[[R]])
// CHECK:      [[D:v[0-9]+]] = [[FB]].reshape([[SD:k[0-9]+]])
// CHECK:      np.matmul([[R]], a4, out=[[D]])
// CHECK:      [[E:v[0-9]+]] = np.empty([[SC]], [[F32]])
// CHECK:      np.matmul([[D]], a5, out=[[E]])
// CHECK-NEXT: return {{\[}}[[E]]{{\]}}
// CHECK-DAG:  #   [[NA]] = (16,)
// CHECK-DAG:  #   [[SA]] = (2, 8)
// CHECK-DAG:  #   [[NB]] = (48,)
// CHECK-DAG:  #   [[N32]] = 32
// CHECK-DAG:  #   [[SB]] = (2, 16)
// CHECK-DAG:  #   [[N8]] = 8
// CHECK-DAG:  #   [[SD]] = (2, 24)

// SMALL:     def graph(G, a0, a1, a2, a3, a4, a5):
// SMALL-NOT: reshape
// SMALL:     {{np.matmul|k[0-9]+}}({{v[0-9]+}}, a2, {{(out=)?}}
// SMALL:     [[C:v[0-9]+]] = np.empty({{k[0-9]+}}, {{k[0-9]+}})
// SMALL:     {{np.matmul|k[0-9]+}}({{v[0-9]+}}, a3, {{(out=)?}}[[C]])
// SMALL-NOT: reshape
// SMALL:     return
