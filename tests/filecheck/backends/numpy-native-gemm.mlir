// REQUIRES: native
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false native=false}' | filecheck %s --check-prefix=NUMPY

// Small float32 GEMMs as one call of the compiled gemm.matmul (kernels.small_gemm): a
// [2, 8] @ [8, 16] product, one by a weight's transpose (its [16, 4] buffer read as it is:
// dot products) and a global average pool's sum (the [1, 4, 16] value times a column of
// ones); a [2, 4] @ [4, 512] one of 4,096 products too. A wide one (512 columns, 2 x 512 x 512
// products) stays np.matmul. Without native kernels every one is np.matmul.

builtin.module {
  func.func @small(%x: tensor<2x8xf32>, %w1: tensor<8x16xf32>, %w2: tensor<4x16xf32>, %w3: tensor<4x512xf32>,
                   %w4: tensor<512x512xf32>, %p: tensor<1x4x4x4xf32>) -> (tensor<2x512xf32>, tensor<1x4x1x1xf32>) {
    %a = ge.matmul %x, %w1 : (tensor<2x8xf32>, tensor<8x16xf32>) -> tensor<2x16xf32>
    %t = ge.transpose %w2 {perm = array<i64: 1, 0>} : tensor<4x16xf32> -> tensor<16x4xf32>
    %b = ge.matmul %a, %t : (tensor<2x16xf32>, tensor<16x4xf32>) -> tensor<2x4xf32>
    %c = ge.matmul %b, %w3 : (tensor<2x4xf32>, tensor<4x512xf32>) -> tensor<2x512xf32>
    %d = ge.matmul %c, %w4 : (tensor<2x512xf32>, tensor<512x512xf32>) -> tensor<2x512xf32>
    %g = ge.global_avg_pool %p : tensor<1x4x4x4xf32> -> tensor<1x4x1x1xf32>
    func.return %d, %g : tensor<2x512xf32>, tensor<1x4x1x1xf32>
  }
}

// CHECK-LABEL: # func @small
// CHECK:       [[MM1:k[0-9]+]](a0, a1, [[A:v[0-9]+]])
// CHECK:       [[MM2:k[0-9]+]]([[A]], {{v[0-9]+}}, [[B:v[0-9]+]])
// CHECK:       [[MM3:k[0-9]+]]([[B]], a3, [[C:v[0-9]+]])
// CHECK:       np.matmul([[C]], a4, out=
// CHECK:       [[MM4:k[0-9]+]]({{v[0-9]+}}, [[ONES:k[0-9]+]], {{v[0-9]+}})
// CHECK-DAG:   #   [[MM1]] = <function matmul>
// CHECK-DAG:   #   [[MM2]] = <function matmul>
// CHECK-DAG:   #   [[MM3]] = <function matmul>
// CHECK-DAG:   #   [[MM4]] = <function matmul>

// NUMPY-LABEL: # func @small
// NUMPY-COUNT-5: np.matmul(
// NUMPY-NOT:   <function matmul>
