// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s

// A buffer whose last use is a whole copy into a global the function touches nowhere else
// is that global's array: no temporary, no copy. When the function also reads the global,
// the copy stays (the read must see the old value).

builtin.module {
  ge.variable @v : tensor<4xf32>
  ge.variable @u : tensor<4xf32>
  func.func @set_v() {
    %x = ge.data "x" index 0 : tensor<4xf32>
    %y = ge.exp %x : tensor<4xf32>
    ge.assign @v, %y : tensor<4xf32>
    func.return
  }
  func.func @bump_u() {
    %x = ge.data "x" index 0 : tensor<4xf32>
    %u = ge.read_variable @u : tensor<4xf32>
    %y = ge.add %u, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    ge.assign @u, %y : tensor<4xf32>
    func.return
  }
}

// CHECK:      # func @set_v
// CHECK:      [[V:v[0-9]+]] = G{{\[}}[[NAME:k[0-9]+]]{{\]}}
// CHECK-NEXT: np.exp(a0, out=[[V]])
// CHECK-NOT:  np.copyto(
// CHECK:      return []
// CHECK:      #   [[NAME]] = 'v'

// CHECK:      # func @bump_u
// CHECK:      [[T:v[0-9]+]] = np.empty(
// CHECK:      np.add([[T]], a0, out=[[SUM:v[0-9]+]])
// CHECK-NEXT: [[U:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT: np.copyto([[U]], [[SUM]])
// CHECK-NEXT: return []
