// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false hoist=false}' | filecheck %s

// sdpa's masked softmax ends in `where(isnan(p), 0, p)`: `isnan` of one value is
// `np.isnan` with `out=` (not `isnan(p) | isnan(p)` into a temporary, then a copy), and the
// select whose other operand is the output's own elements writes only where the mask holds
// (`np.copyto(..., where=)`, no `np.where` temporary and copy).

builtin.module {
  func.func @f() -> tensor<3x4xf32> {
    %x = ge.data "x" index 0 : tensor<3x4xf32>
    %p = ge.softmax %x {axis = -1 : i64} : tensor<3x4xf32>
    %n = ge.is_nan %p : tensor<3x4xf32> -> tensor<3x4xi1>
    %z = ge.const "zero" : tensor<f32>
    %y = ge.where %n, %z, %p : (tensor<3x4xi1>, tensor<f32>, tensor<3x4xf32>) -> tensor<3x4xf32>
    func.return %y : tensor<3x4xf32>
  }
}

// CHECK:      np.divide({{v[0-9]+}}, {{v[0-9]+}}, out=[[P:v[0-9]+]])
// CHECK-NEXT: [[M:v[0-9]+]] = np.empty(
// CHECK-NEXT: np.isnan([[P]], out=[[M]])
// CHECK-NEXT: [[Z:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: [[Y:v[0-9]+]] = {{v[0-9]+}}
// CHECK-NEXT: np.copyto([[Y]], [[Z]], where=[[M]])
// CHECK-NEXT: return {{\[}}[[Y]]{{\]}}
