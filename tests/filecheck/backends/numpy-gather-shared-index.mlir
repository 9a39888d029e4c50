// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s

// Gathers by the indices of a constant (they cannot change while the function runs) test
// their range once: the first computes the test into a flag, the next reads it. Indices
// that are an input are taken in NumPy's raise mode, with the masked copy on IndexError.

builtin.module {
  func.func @g() -> (tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>) {
    %i = ge.const "i" : tensor<2xi64>
    %j = ge.data "j" index 0 : tensor<2xi64>
    %d = ge.const "d" : tensor<5x4xf32>
    %e = ge.const "e" : tensor<5x4xf32>
    %y = ge.gather %d, %i {axis = 0 : i64} : (tensor<5x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
    %z = ge.gather %e, %i {axis = 0 : i64} : (tensor<5x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
    %w = ge.gather %e, %j {axis = 0 : i64} : (tensor<5x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
    func.return %y, %z, %w : tensor<2x4xf32>, tensor<2x4xf32>, tensor<2x4xf32>
  }
}

// CHECK:      # func @g
// CHECK:      [[I:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK:      [[OK:r[0-9]+]] = [[I]].min() >= -[[SIZE:k[0-9]+]] and [[I]].max() < [[SIZE]]
// CHECK-NEXT: if [[OK]]:
// CHECK-NEXT:     np.take({{v[0-9]+}}, [[I]], axis={{k[0-9]+}}, out={{v[0-9]+}}, mode='wrap')
// CHECK-NOT:  .min()
// CHECK:      if [[OK]]:
// CHECK-NEXT:     np.take({{v[0-9]+}}, [[I]], axis={{k[0-9]+}}, out={{v[0-9]+}}, mode='wrap')
// CHECK:      try:
// CHECK-NEXT:     np.take({{v[0-9]+}}, a0, axis={{k[0-9]+}}, out={{v[0-9]+}})
// CHECK-NEXT: except IndexError:
