// RUN: wrc-opt %s -p 'ge-const-to-var{names=const_1,const_2},ge-split-weight-refreshable' | filecheck %s
// RUN: wrc-opt %s -p 'ge-const-to-var{names=const_1,const_2}' | wrc-opt -p ge-split-weight-refreshable | filecheck %s

// The two conversion passes in one pipeline, or one after the other through text, give
// the same three graphs (docs/spec.md §2: GE's aclgrphConvertToWeightRefreshableGraphs).

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @const_1_var : tensor<4x3xf32>
// CHECK-NEXT:   ge.variable @const_2_var : tensor<3xf32>
// CHECK-NEXT:   func.func @var_init_graph() {
// CHECK-NEXT:     %0 = ge.const "const_1" : tensor<4x3xf32>
// CHECK-NEXT:     ge.assign @const_1_var, %0 {name = "const_1_assign"} : tensor<4x3xf32>
// CHECK-NEXT:     %1 = ge.const "const_2" = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00]> : tensor<3xf32>
// CHECK-NEXT:     ge.assign @const_2_var, %1 {name = "const_2_assign"} : tensor<3xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_update_graph() {
// CHECK-NEXT:     %0 = ge.data "const_1_var_data" index 0 : tensor<*xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @const_1_var, %0 : tensor<*xf32>
// CHECK-NEXT:     %1 = ge.data "const_2_var_data" index 1 : tensor<*xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @const_2_var, %1 : tensor<*xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_infer_graph() -> tensor<2x3xf32> {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %w = ge.read_variable @const_1_var : tensor<4x3xf32>
// CHECK-NEXT:     %b = ge.read_variable @const_2_var : tensor<3xf32>
// CHECK-NEXT:     %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %z = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     func.return %z : tensor<2x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

builtin.module {
  func.func @main() -> tensor<2x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.const "const_1" : tensor<4x3xf32>
    %b = ge.const "const_2" = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %z = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    func.return %z : tensor<2x3xf32>
  }
}
