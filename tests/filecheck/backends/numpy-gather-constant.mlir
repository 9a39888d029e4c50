// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s

// A gather whose indices are a constant with its value in the IR is decided when it is
// lowered and when the code is generated. Rows `start + step * i` in range (one index:
// torchvision's q, k, v = proj[0], proj[1], proj[2]; or a progression) are a copy of a strided
// view, as a slice is (convert-ge-to-linalg: no wrc_gather). Other indices all in range are
// taken straight into the output, with no fallback for out-of-range ones; out of range, they
// take the masked copy alone. Others (stored, or an input) keep the test and the fallback.

builtin.module {
  func.func @g() -> (tensor<4xf32>, tensor<2x4xf32>, tensor<4xf32>, tensor<2x4xf32>) {
    %d = ge.const "d" : tensor<3x4xf32>
    %i = ge.const "i" = dense<1> : tensor<i64>
    %j = ge.const "j" = dense<[2, -3]> : tensor<2xi64>
    %k = ge.const "k" = dense<3> : tensor<i64>
    %p = ge.const "p" = dense<[-3, 2]> : tensor<2xi64>
    %y = ge.gather %d, %i {axis = 0 : i64} : (tensor<3x4xf32>, tensor<i64>) -> tensor<4xf32>
    %z = ge.gather %d, %j {axis = 0 : i64} : (tensor<3x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
    %w = ge.gather %d, %k {axis = 0 : i64} : (tensor<3x4xf32>, tensor<i64>) -> tensor<4xf32>
    %v = ge.gather %d, %p {axis = 0 : i64} : (tensor<3x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
    func.return %y, %z, %w, %v : tensor<4xf32>, tensor<2x4xf32>, tensor<4xf32>, tensor<2x4xf32>
  }
}

// CHECK:      # func @g
// CHECK:      [[D:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: {{v[0-9]+}} = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: [[J:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: [[K:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: {{v[0-9]+}} = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: [[Y:v[0-9]+]] = np.empty(
// CHECK-NEXT: [[ROW:v[0-9]+]] = _nd({{k[0-9]+}}, {{k[0-9]+}}, [[D]], [[AT:k[0-9]+]], {{k[0-9]+}})
// CHECK-NEXT: np.copyto([[Y]], [[ROW]])
// CHECK-NEXT: [[Z:v[0-9]+]] = np.empty(
// CHECK-NOT:  try:
// CHECK:      [[D]].take([[J]], axis={{k[0-9]+}}, out=[[Z]], mode='wrap')
// CHECK-NEXT: [[W:v[0-9]+]] = np.empty(
// CHECK-NEXT: {{v[0-9]+}} = {{k[0-9]+}}
// CHECK-NEXT: [[T:v[0-9]+]] = np.where([[K]] < 0,
// CHECK-NEXT: [[OK:v[0-9]+]] = np.logical_and([[T]] >= 0,
// CHECK-NEXT: np.copyto([[W]], np.where([[OK]].reshape(
// CHECK-NEXT: [[V:v[0-9]+]] = np.empty(
// CHECK-NEXT: [[ROWS:v[0-9]+]] = _nd({{k[0-9]+}}, {{k[0-9]+}}, [[D]], {{k[0-9]+}}, [[STRIDES:k[0-9]+]])
// CHECK-NEXT: np.copyto([[V]], [[ROWS]])
// CHECK:      #   [[AT]] = 16
// CHECK:      #   [[STRIDES]] = (32, 4)
