// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{hoist=false}' | filecheck %s

// An optional update input (`ge.optional`, followed by its i1 flag) is checked only when
// its flag is set: a partial update costs nothing per weight left out.

builtin.module {
  ge.variable @w_var : tensor<8xf32>
  func.func @var_update_graph() {
    %0 = ge.data "w_var_data" index 0 : tensor<*xf32>
    ge.assign_if_nonempty @w_var, %0 : tensor<*xf32>
    func.return
  }
}

// CHECK:      def graph(G, a0, a1):
// CHECK-NEXT:     if a1:
// CHECK-NEXT:         a0 = np.asarray(a0, order={{k[0-9]+}})
// CHECK-NEXT:         if a0.shape != [[SHAPE:k[0-9]+]] or a0.dtype != [[DTYPE:k[0-9]+]]:
// CHECK-NEXT:             _bad_arg({{k[0-9]+}}, a0, [[SHAPE]], [[DTYPE]])
// CHECK-NEXT:     if a1:
// CHECK-NEXT:         [[W:v[0-9]+]] = G{{\[}}{{k[0-9]+}}{{\]}}
// CHECK-NEXT:         np.copyto([[W]], a0)
// CHECK-NEXT:     return []
// CHECK-DAG:  #   [[SHAPE]] = (8,)
// CHECK-DAG:  #   [[DTYPE]] = dtype('float32')
