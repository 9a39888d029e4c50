// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false hoist=false}' | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{forward-copies=false hoist=false}' | filecheck %s --check-prefix=OFF

// Attention's head transposes (numpy_jit/forward.py): a transposing copy that only GEMMs
// and elementwise generics read is not made; the batched GEMM reads its source through
// strided views (q as [heads, seq, dh], k as [heads, dh, seq] of the same [seq, heads*dh]
// arrays), a multiply (sdpa's scale) reads its view and writes the transposed product. The
// sum's array stays alive until the GEMM has read it. A transpose that is returned stays a
// copy. (NumPy forms: with native kernels the scale, a broadcast operand, is a call of the
// elementwise machine reading the same strides: tests/test_fuse.py.)

builtin.module {
  func.func @heads() -> tensor<2x4x4xf32> {
    %x = ge.data "x" index 0 : tensor<4x4xf32>
    %k = ge.add %x, %x : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %q3 = ge.reshape %x : tensor<4x4xf32> -> tensor<4x2x2xf32>
    %qt = ge.transpose %q3 {perm = array<i64: 1, 0, 2>} : tensor<4x2x2xf32> -> tensor<2x4x2xf32>
    %k3 = ge.reshape %k : tensor<4x4xf32> -> tensor<4x2x2xf32>
    %kt = ge.transpose %k3 {perm = array<i64: 1, 2, 0>} : tensor<4x2x2xf32> -> tensor<2x2x4xf32>
    %s = ge.matmul %qt, %kt : (tensor<2x4x2xf32>, tensor<2x2x4xf32>) -> tensor<2x4x4xf32>
    func.return %s : tensor<2x4x4xf32>
  }
  func.func @scaled() -> tensor<2x4x2xf32> {
    %x = ge.data "x" index 0 : tensor<4x4xf32>
    %c = ge.const "c" : tensor<f32>
    %q3 = ge.reshape %x : tensor<4x4xf32> -> tensor<4x2x2xf32>
    %qt = ge.transpose %q3 {perm = array<i64: 1, 0, 2>} : tensor<4x2x2xf32> -> tensor<2x4x2xf32>
    %s = ge.mul %qt, %c : (tensor<2x4x2xf32>, tensor<f32>) -> tensor<2x4x2xf32>
    func.return %s : tensor<2x4x2xf32>
  }
  func.func @returned() -> tensor<2x4x2xf32> {
    %x = ge.data "x" index 0 : tensor<4x4xf32>
    %q3 = ge.reshape %x : tensor<4x4xf32> -> tensor<4x2x2xf32>
    %qt = ge.transpose %q3 {perm = array<i64: 1, 0, 2>} : tensor<4x2x2xf32> -> tensor<2x4x2xf32>
    func.return %qt : tensor<2x4x2xf32>
  }
}

// CHECK:      # func @heads
// CHECK:      np.add(a0, a0, out=[[K:v[0-9]+]])
// CHECK-NOT:  np.copyto(
// CHECK:      [[Q:v[0-9]+]] = _nd([[QS:k[0-9]+]], {{k[0-9]+}}, a0, {{k[0-9]+}}, [[QST:k[0-9]+]])
// CHECK-NEXT: [[KV:v[0-9]+]] = _nd([[KS:k[0-9]+]], {{k[0-9]+}}, [[K]], {{k[0-9]+}}, [[KST:k[0-9]+]])
// CHECK-NEXT: np.matmul([[Q]], [[KV]], out={{v[0-9]+}})
// CHECK-NOT:  np.copyto(
// CHECK:      return
// CHECK-DAG:  #   [[QS]] = (2, 4, 2)
// CHECK-DAG:  #   [[QST]] = (8, 16, 4)
// CHECK-DAG:  #   [[KS]] = (2, 2, 4)
// CHECK-DAG:  #   [[KST]] = (8, 4, 16)

// CHECK:      # func @scaled
// CHECK-NOT:  np.copyto(
// CHECK:      [[V:v[0-9]+]] = _nd({{k[0-9]+}}, {{k[0-9]+}}, a0, {{k[0-9]+}}, {{k[0-9]+}})
// CHECK-NEXT: np.multiply([[V]], {{v[0-9]+}}, out={{v[0-9]+}})

// CHECK:      # func @returned
// CHECK:      np.copyto(

// OFF:        # func @heads
// OFF-COUNT-2: np.copyto(
// OFF:        np.matmul(
