// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false}' | filecheck %s

// Hoisting (`JitOptions.hoist`, on by default): `bind(G)` looks the globals up and views
// them (once per weight version), `scratch()` allocates the temporaries and views them
// (once per arena), and `graph(W, S, ...)` unpacks what it reads of both. The zero-filled
// padded image is an arena's, filled with zeros again at each call; the results (the convolution
// and the ReLU) are allocated per call, since the caller keeps them.

builtin.module {
  ge.variable @w_var : tensor<8xf32>
  func.func @conv(%x: tensor<1x2x4x4xf32>, %b: tensor<1x2x1x1xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
    %w = ge.const "w" : tensor<2x2x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    %z = ge.add %y, %b : (tensor<1x2x4x4xf32>, tensor<1x2x1x1xf32>) -> tensor<1x2x4x4xf32>
    %r = ge.relu %z : tensor<1x2x4x4xf32>
    func.return %r, %y : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
  }
  func.func @var_update_graph() {
    %0 = ge.data "w_var_data" index 0 : tensor<*xf32>
    ge.assign_if_nonempty @w_var, %0 : tensor<*xf32>
    func.return
  }
}

// CHECK-LABEL: # func @conv
// CHECK-NEXT:  def bind(G):
// CHECK-NEXT:      [[W:v[0-9]+]] = G{{\[}}[[WNAME:k[0-9]+]]{{\]}}
// CHECK-NEXT:      [[WM:v[0-9]+]] = [[W]].reshape({{k[0-9]+}})
// CHECK-NEXT:      return ([[WM]], )
// CHECK-NEXT:  def scratch():
// CHECK-NEXT:      [[PAD:v[0-9]+]] = np.zeros([[PADDED:k[0-9]+]], [[F32:k[0-9]+]])
// CHECK-NEXT:      [[IN:v[0-9]+]] = [[PAD]]{{\[}}[[BOX:k[0-9]+]]{{\]}}
// CHECK-NEXT:      [[COLS:v[0-9]+]] = _nd([[COLSHAPE:k[0-9]+]], [[F32]], [[PAD]],
// CHECK-NEXT:      return ([[PAD]], [[IN]], [[COLS]], )
// CHECK-NEXT:  def graph(W, S, a0, a1):
// CHECK-NEXT:      [[WM]], = W
// CHECK-NEXT:      [[PAD]], [[IN]], [[COLS]], = S
// CHECK-NOT:       G{{\[}}
// CHECK:           [[PAD]].fill([[ZERO:k[0-9]+]])
// CHECK-NEXT:      np.copyto([[IN]], a0)
// CHECK-NEXT:      [[Y:v[0-9]+]] = np.empty({{k[0-9]+}}, [[F32]])
// CHECK-NEXT:      [[OUT:v[0-9]+]] = [[Y]].reshape(
// CHECK-NEXT:      np.matmul([[WM]], np.ascontiguousarray([[COLS]]).reshape({{k[0-9]+}}), out=[[OUT]])
// CHECK-NEXT:      [[R:v[0-9]+]] = np.empty({{k[0-9]+}}, [[F32]])
// CHECK-NEXT:      np.add([[Y]], a1, out=[[R]])
// CHECK-NEXT:      np.maximum([[R]], {{k[0-9]+}}, out=[[R]])
// CHECK-NEXT:      return {{\[}}[[R]], [[Y]]{{\]}}
// CHECK-DAG:   #   [[WNAME]] = 'w'
// CHECK-DAG:   #   [[PADDED]] = (1, 2, 6, 6)
// CHECK-DAG:   #   [[ZERO]] = 0
// CHECK-DAG:   #   [[BOX]] = (slice(0, 1, None), slice(0, 2, None), slice(1, 5, None), slice(1, 5, None))
// CHECK-DAG:   #   [[COLSHAPE]] = (2, 3, 3, 4, 4)

// A lookup in a branch (an optional input's variable, a global only when its flag is set)
// stays per call: `bind` then passes `G` itself.
// CHECK-LABEL: # func @var_update_graph
// CHECK-NEXT:  def bind(G):
// CHECK-NEXT:      return (G, )
// CHECK-NEXT:  def scratch():
// CHECK-NEXT:      return ()
// CHECK-NEXT:  def graph(W, S, a0, a1):
// CHECK-NEXT:      G, = W
// CHECK:           if a1:
// CHECK:           if a1:
// CHECK-NEXT:          [[V:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT:          np.copyto([[V]], a0)
