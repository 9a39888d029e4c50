// REQUIRES: native
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t numpy | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false}' | filecheck %s --check-prefix=NUMPY

// A CNN's tail with the machine (fuse.py): a per-channel bias, SiLU (x * sigmoid(x), the
// sigmoid lowered as 1 / (1 + exp(-x))) and a squeeze-excite gate (a sigmoid of a
// [1, C, 1, 1] value scaling the [1, C, H, W] one) are one call; the four steps of each sigmoid
// are one instruction (opcode 24), and the gate, computed over the channels only, is a
// member of the group broadcast over each plane. A lone op with a constant operand over a
// small space (a squeeze-excite's ReLU over the channels) is a call of the machine too (NumPy's
// ufunc costs ~0.2 µs more a call), not over a large one.

builtin.module {
  func.func @tail(%x: tensor<1x4x3x3xf32>, %s: tensor<1x4x1x1xf32>) -> tensor<1x4x3x3xf32> {
    %h = ge.add %x, %s : (tensor<1x4x3x3xf32>, tensor<1x4x1x1xf32>) -> tensor<1x4x3x3xf32>
    %g = ge.sigmoid %h : tensor<1x4x3x3xf32>
    %silu = ge.mul %h, %g : (tensor<1x4x3x3xf32>, tensor<1x4x3x3xf32>) -> tensor<1x4x3x3xf32>
    %gate = ge.sigmoid %s : tensor<1x4x1x1xf32>
    %y = ge.mul %silu, %gate : (tensor<1x4x3x3xf32>, tensor<1x4x1x1xf32>) -> tensor<1x4x3x3xf32>
    func.return %y : tensor<1x4x3x3xf32>
  }
  func.func @relu(%x: tensor<1x4x1x1xf32>, %big: tensor<1x8x64x64xf32>) -> (tensor<1x4x1x1xf32>, tensor<1x8x64x64xf32>) {
    %y = ge.relu %x : tensor<1x4x1x1xf32>
    %z = ge.relu %big : tensor<1x8x64x64xf32>
    func.return %y, %z : tensor<1x4x1x1xf32>, tensor<1x8x64x64xf32>
  }
}

// CHECK-LABEL: # func @tail
// CHECK:       np.empty(
// CHECK-NOT:   np.{{add|negative|exp|divide|multiply}}(
// CHECK:       [[MACHINE:k[0-9]+]]([[PROGRAM:k[0-9]+]], a0, a1, [[OUT:v[0-9]+]])
// CHECK-NOT:   np.
// CHECK:       return {{\[}}[[OUT]]{{\]}}
// CHECK-DAG:   #   [[MACHINE]] = <function run>
// The program's 59 words: float32 over (4 channels, 9 pixels), three operands (x, s at
// strides (1, 0), the output), and 8 instructions: two loads, the add, a sigmoid, the
// product, the gate's sigmoid, the product, the store (each sigmoid as its four steps and
// the constant 1 would make 15 instructions, 94 words).
// CHECK-DAG:   #   [[PROGRAM]] = array<int64[59]>

// NUMPY-LABEL: # func @tail
// NUMPY:       np.add(a0, a1, out=[[H:v[0-9]+]])
// NUMPY:       np.exp(
// NUMPY:       np.multiply([[H]],
// NUMPY:       np.exp(
// NUMPY:       np.multiply(

// CHECK-LABEL: # func @relu
// CHECK:       [[MACHINE:k[0-9]+]]({{k[0-9]+}}, a0, {{v[0-9]+}})
// CHECK:       np.maximum(a1,
// CHECK-DAG:   #   [[MACHINE]] = <function run>

// NUMPY-LABEL: # func @relu
// NUMPY:       np.maximum(a0,
// NUMPY:       np.maximum(a1,
