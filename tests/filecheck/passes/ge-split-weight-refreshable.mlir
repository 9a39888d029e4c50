// RUN: wrc-opt %s --split-input-file --verify-diagnostics -p ge-split-weight-refreshable | filecheck %s
// RUN: not wrc-opt %s --split-input-file -p ge-split-weight-refreshable,ge-split-weight-refreshable 2>&1 | filecheck %s --check-prefix=TWICE

// Splitting twice: the second run finds three graphs (and variables without `init`).
// TWICE-NOT: Traceback
// TWICE: wrc-opt: error: ge-split-weight-refreshable: expects a module holding exactly one func.func (the graph), found 3 (@var_init_graph, @var_update_graph, @var_infer_graph)

// Each case below is followed by its expected output.

// The output of ge-const-to-var{names=w,b}: `w` named bytes in the weight table, `b` was
// inline; `c` stays a constant of the infer graph.
builtin.module {
  ge.variable @w_var : tensor<4x3xf32> {init = "w"}
  ge.variable @b_var : tensor<3xf32> {init = "b", init_value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>}
  func.func @main() -> tensor<2x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.read_variable @w_var : tensor<4x3xf32>
    %b = ge.read_variable @b_var : tensor<3xf32>
    %c = ge.const "c" = dense<0.5> : tensor<f32>
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %z = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %r = ge.mul %z, %c : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    func.return %r : tensor<2x3xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<4x3xf32>
// CHECK-NEXT:   ge.variable @b_var : tensor<3xf32>
// CHECK-NEXT:   func.func @var_init_graph() {
// CHECK-NEXT:     %0 = ge.const "w" : tensor<4x3xf32>
// CHECK-NEXT:     ge.assign @w_var, %0 {name = "w_assign"} : tensor<4x3xf32>
// CHECK-NEXT:     %1 = ge.const "b" = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00]> : tensor<3xf32>
// CHECK-NEXT:     ge.assign @b_var, %1 {name = "b_assign"} : tensor<3xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_update_graph() {
// CHECK-NEXT:     %0 = ge.data "w_var_data" index 0 : tensor<*xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @w_var, %0 : tensor<*xf32>
// CHECK-NEXT:     %1 = ge.data "b_var_data" index 1 : tensor<*xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @b_var, %1 : tensor<*xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_infer_graph() -> tensor<2x3xf32> {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<4x3xf32>
// CHECK-NEXT:     %b = ge.read_variable @b_var : tensor<3xf32>
// CHECK-NEXT:     %c = ge.const "c" = dense<5.000000e-01> : tensor<f32>
// CHECK-NEXT:     %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %z = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %r = ge.mul %z, %c : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
// CHECK-NEXT:     func.return %r : tensor<2x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// A scalar variable (updated through a tensor<*xf32> input like any other) and an integer
// one; variables declared after the graph move before the three graphs, in order.
builtin.module {
  func.func @graph() -> (tensor<f32>, tensor<2xi32>) {
    %s = ge.read_variable @s_var : tensor<f32>
    %i = ge.read_variable @i_var : tensor<2xi32>
    func.return %s, %i : tensor<f32>, tensor<2xi32>
  }
  ge.variable @s_var : tensor<f32> {init = "s", init_value = dense<0.0> : tensor<f32>}
  ge.variable @i_var : tensor<2xi32> {init = "i"}
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @s_var : tensor<f32>
// CHECK-NEXT:   ge.variable @i_var : tensor<2xi32>
// CHECK-NEXT:   func.func @var_init_graph() {
// CHECK-NEXT:     %0 = ge.const "s" = dense<0.000000e+00> : tensor<f32>
// CHECK-NEXT:     ge.assign @s_var, %0 {name = "s_assign"} : tensor<f32>
// CHECK-NEXT:     %1 = ge.const "i" : tensor<2xi32>
// CHECK-NEXT:     ge.assign @i_var, %1 {name = "i_assign"} : tensor<2xi32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_update_graph() {
// CHECK-NEXT:     %0 = ge.data "s_var_data" index 0 : tensor<*xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @s_var, %0 : tensor<*xf32>
// CHECK-NEXT:     %1 = ge.data "i_var_data" index 1 : tensor<*xi32>
// CHECK-NEXT:     ge.assign_if_nonempty @i_var, %1 : tensor<*xi32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_infer_graph() -> (tensor<f32>, tensor<2xi32>) {
// CHECK-NEXT:     %s = ge.read_variable @s_var : tensor<f32>
// CHECK-NEXT:     %i = ge.read_variable @i_var : tensor<2xi32>
// CHECK-NEXT:     func.return %s, %i : tensor<f32>, tensor<2xi32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// A graph already called var_infer_graph keeps its name.
builtin.module {
  ge.variable @w_var : tensor<2xf32> {init = "w"}
  func.func @var_infer_graph() -> tensor<2xf32> {
    %w = ge.read_variable @w_var : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<2xf32>
// CHECK-NEXT:   func.func @var_init_graph() {
// CHECK-NEXT:     %0 = ge.const "w" : tensor<2xf32>
// CHECK-NEXT:     ge.assign @w_var, %0 {name = "w_assign"} : tensor<2xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_update_graph() {
// CHECK-NEXT:     %0 = ge.data "w_var_data" index 0 : tensor<*xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @w_var, %0 : tensor<*xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_infer_graph() -> tensor<2xf32> {
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<2xf32>
// CHECK-NEXT:     func.return %w : tensor<2xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// Error: nothing to split.
builtin.module {
  func.func @main() -> tensor<2xf32> {
    %w = ge.const "w" : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}

// CHECK: ge-split-weight-refreshable: the module holds no ge.variable (run ge-const-to-var first)

// -----

// Error: a variable that does not come from ge-const-to-var.
builtin.module {
  ge.variable @w_var : tensor<2xf32> {init = "w"}
  ge.variable @state : tensor<2xf32>
  func.func @main() -> tensor<2xf32> {
    %w = ge.read_variable @w_var : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}

// CHECK: ge-split-weight-refreshable: ge.variable @state has no `init` (the constant it replaced); run ge-const-to-var to create variables

// -----

// Error: no graph.
builtin.module {
  ge.variable @w_var : tensor<2xf32> {init = "w"}
}

// CHECK: ge-split-weight-refreshable: expects a module holding exactly one func.func (the graph), found 0 (none)

// -----

// Error: more than one graph.
builtin.module {
  ge.variable @w_var : tensor<2xf32> {init = "w"}
  func.func @main() {
    func.return
  }
  func.func @var_init_graph() {
    func.return
  }
}

// CHECK: ge-split-weight-refreshable: expects a module holding exactly one func.func (the graph), found 2 (@main, @var_init_graph)

// -----

// Error: a symbol the split would define is taken.
builtin.module {
  ge.variable @var_update_graph : tensor<2xf32> {init = "w"}
  func.func @main() -> tensor<2xf32> {
    %w = ge.read_variable @var_update_graph : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}

// CHECK: ge-split-weight-refreshable: symbol @var_update_graph already exists
