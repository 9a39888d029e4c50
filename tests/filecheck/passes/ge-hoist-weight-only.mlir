// RUN: wrc-opt %s --split-input-file -p ge-hoist-weight-only | filecheck %s
// RUN: wrc-opt %s --split-input-file -p ge-hoist-weight-only,ge-hoist-weight-only | filecheck %s

// A Gemm with a transposed weight, a bias scaled by a second weight and a frozen constant,
// and two frozen constants multiplied together. After the pass, the infer graph has no op
// whose operands are only variables or constants, but for the transpose that only feeds a
// matmul (the lowering folds it into the matmul: BLAS reads it for free). Each hoisted value
// is a derived variable, computed by one derive function per set of source variables
// (constants alone: folded).
builtin.module {
  ge.variable @w_var : tensor<3x4xf32>
  ge.variable @b_var : tensor<3xf32>
  ge.variable @s_var : tensor<3xf32>
  func.func @var_init_graph() {
    %0 = ge.const "w" : tensor<3x4xf32>
    %t = ge.transpose %0 {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
    %1 = ge.transpose %t {perm = array<i64: 1, 0>} : tensor<4x3xf32> -> tensor<3x4xf32>
    ge.assign @w_var, %1 : tensor<3x4xf32>
    func.return
  }
  func.func @var_infer_graph() -> tensor<2x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.read_variable @w_var : tensor<3x4xf32>
    %b = ge.read_variable @b_var : tensor<3xf32>
    %s = ge.read_variable @s_var : tensor<3xf32>
    %c = ge.const "c" = dense<2.0> : tensor<f32>
    %k = ge.const "k" = dense<3.0> : tensor<3xf32>
    %wt = ge.transpose %w {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
    %y = ge.matmul %x, %wt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %bs = ge.mul %b, %s : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    %bc = ge.mul %bs, %c : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %z = ge.add %y, %bc : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %kc = ge.mul %k, %c : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
    %r = ge.add %z, %kc : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    func.return %r : tensor<2x3xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<3x4xf32>
// CHECK-NEXT:   ge.variable @b_var : tensor<3xf32>
// CHECK-NEXT:   ge.variable @s_var : tensor<3xf32>
// CHECK-NEXT:   ge.variable @b_var.hoisted0 : tensor<3xf32>
// CHECK-NEXT:   ge.variable @folded0 : tensor<3xf32>
// CHECK-NEXT:   func.func @wrc.derive.0() attributes {ge.derive} {
// CHECK-NEXT:     %c = ge.const "c" = dense<2.000000e+00> : tensor<f32>
// CHECK-NEXT:     %k = ge.const "k" = dense<3.000000e+00> : tensor<3xf32>
// CHECK-NEXT:     %kc = ge.mul %k, %c : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
// CHECK-NEXT:     ge.assign @folded0, %kc : tensor<3xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @wrc.derive.1() attributes {ge.derive} {
// CHECK-NEXT:     %b = ge.read_variable @b_var : tensor<3xf32>
// CHECK-NEXT:     %s = ge.read_variable @s_var : tensor<3xf32>
// CHECK-NEXT:     %c = ge.const "c" = dense<2.000000e+00> : tensor<f32>
// CHECK-NEXT:     %bs = ge.mul %b, %s : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:     %bc = ge.mul %bs, %c : (tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
// CHECK-NEXT:     ge.assign @b_var.hoisted0, %bc : tensor<3xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_init_graph() {
// CHECK-NEXT:     %0 = ge.const "w" : tensor<3x4xf32>
// CHECK-NEXT:     %t = ge.transpose %0 {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
// CHECK-NEXT:     %1 = ge.transpose %t {perm = array<i64: 1, 0>} : tensor<4x3xf32> -> tensor<3x4xf32>
// CHECK-NEXT:     ge.assign @w_var, %1 : tensor<3x4xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_infer_graph() -> tensor<2x3xf32> {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<3x4xf32>
// CHECK-NEXT:     %wt = ge.transpose %w {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
// CHECK-NEXT:     %y = ge.matmul %x, %wt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %bc = ge.read_variable @b_var.hoisted0 : tensor<3xf32>
// CHECK-NEXT:     %z = ge.add %y, %bc : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %kc = ge.read_variable @folded0 : tensor<3xf32>
// CHECK-NEXT:     %r = ge.add %z, %kc : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     func.return %r : tensor<2x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// A weight-only value used both by inference and by a larger weight-only value: both are
// hoisted; the returned weight-only value too. A graph that writes variables (the update
// graph) is left as it is.
builtin.module {
  ge.variable @w_var : tensor<2x2xf32>
  func.func @var_update_graph() {
    %d = ge.data "w_var_data" index 0 : tensor<*xf32>
    ge.assign_if_nonempty @w_var, %d : tensor<*xf32>
    func.return
  }
  func.func @var_infer_graph() -> (tensor<2x2xf32>, tensor<2x2xf32>) {
    %x = ge.data "x" index 0 : tensor<2x2xf32>
    %w = ge.read_variable @w_var : tensor<2x2xf32>
    %e = ge.exp %w : tensor<2x2xf32>
    %y = ge.matmul %x, %e : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
    %n = ge.neg %e : tensor<2x2xf32>
    func.return %y, %n : tensor<2x2xf32>, tensor<2x2xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<2x2xf32>
// CHECK-NEXT:   ge.variable @w_var.hoisted0 : tensor<2x2xf32>
// CHECK-NEXT:   ge.variable @w_var.hoisted1 : tensor<2x2xf32>
// CHECK-NEXT:   func.func @wrc.derive.0() attributes {ge.derive} {
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<2x2xf32>
// CHECK-NEXT:     %e = ge.exp %w : tensor<2x2xf32>
// CHECK-NEXT:     %n = ge.neg %e : tensor<2x2xf32>
// CHECK-NEXT:     ge.assign @w_var.hoisted0, %e : tensor<2x2xf32>
// CHECK-NEXT:     ge.assign @w_var.hoisted1, %n : tensor<2x2xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_update_graph() {
// CHECK-NEXT:     %d = ge.data "w_var_data" index 0 : tensor<*xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @w_var, %d : tensor<*xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_infer_graph() -> (tensor<2x2xf32>, tensor<2x2xf32>) {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x2xf32>
// CHECK-NEXT:     %e = ge.read_variable @w_var.hoisted0 : tensor<2x2xf32>
// CHECK-NEXT:     %y = ge.matmul %x, %e : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
// CHECK-NEXT:     %n = ge.read_variable @w_var.hoisted1 : tensor<2x2xf32>
// CHECK-NEXT:     func.return %y, %n : tensor<2x2xf32>, tensor<2x2xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// A transpose feeding other work than a matmul is hoisted; under a transpose that feeds a
// matmul, the computed weight is hoisted and the transpose stays.
builtin.module {
  ge.variable @w_var : tensor<3x4xf32>
  ge.variable @k_var : tensor<3x1xf32>
  func.func @var_infer_graph() -> (tensor<2x3xf32>, tensor<4x3xf32>) {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.read_variable @w_var : tensor<3x4xf32>
    %k = ge.read_variable @k_var : tensor<3x1xf32>
    %wk = ge.mul %w, %k : (tensor<3x4xf32>, tensor<3x1xf32>) -> tensor<3x4xf32>
    %wkt = ge.transpose %wk {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
    %y = ge.matmul %x, %wkt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %wt = ge.transpose %w {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
    %e = ge.exp %wt : tensor<4x3xf32>
    func.return %y, %e : tensor<2x3xf32>, tensor<4x3xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<3x4xf32>
// CHECK-NEXT:   ge.variable @k_var : tensor<3x1xf32>
// CHECK-NEXT:   ge.variable @w_var.hoisted0 : tensor<3x4xf32>
// CHECK-NEXT:   ge.variable @w_var.hoisted1 : tensor<4x3xf32>
// CHECK-NEXT:   func.func @wrc.derive.0() attributes {ge.derive} {
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<3x4xf32>
// CHECK-NEXT:     %k = ge.read_variable @k_var : tensor<3x1xf32>
// CHECK-NEXT:     %wk = ge.mul %w, %k : (tensor<3x4xf32>, tensor<3x1xf32>) -> tensor<3x4xf32>
// CHECK-NEXT:     ge.assign @w_var.hoisted0, %wk : tensor<3x4xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @wrc.derive.1() attributes {ge.derive} {
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<3x4xf32>
// CHECK-NEXT:     %wt = ge.transpose %w {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
// CHECK-NEXT:     %e = ge.exp %wt : tensor<4x3xf32>
// CHECK-NEXT:     ge.assign @w_var.hoisted1, %e : tensor<4x3xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_infer_graph() -> (tensor<2x3xf32>, tensor<4x3xf32>) {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %wk = ge.read_variable @w_var.hoisted0 : tensor<3x4xf32>
// CHECK-NEXT:     %wkt = ge.transpose %wk {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
// CHECK-NEXT:     %y = ge.matmul %x, %wkt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %e = ge.read_variable @w_var.hoisted1 : tensor<4x3xf32>
// CHECK-NEXT:     func.return %y, %e : tensor<2x3xf32>, tensor<4x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }
