// RUN: wrc-opt %s --split-input-file -p ge-fold-weight-scales | filecheck %s

// BatchNorm after a Gemm and after a convolution: the per-column / per-channel scale moves
// into the weights, the bias and the BatchNorm shift become one weight-only shift.
builtin.module {
  ge.variable @w_var : tensor<4x3xf32>
  ge.variable @b_var : tensor<3xf32>
  ge.variable @k_var : tensor<3xf32>
  ge.variable @s_var : tensor<3xf32>
  ge.variable @cw_var : tensor<5x2x3x3xf32>
  ge.variable @ck_var : tensor<5x1x1xf32>
  func.func @var_infer_graph() -> (tensor<2x3xf32>, tensor<1x5x4x4xf32>) {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.read_variable @w_var : tensor<4x3xf32>
    %b = ge.read_variable @b_var : tensor<3xf32>
    %k = ge.read_variable @k_var : tensor<3xf32>
    %s = ge.read_variable @s_var : tensor<3xf32>
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %yb = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %yk = ge.mul %k, %yb : (tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %ys = ge.sub %yk, %s : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %i = ge.data "i" index 1 : tensor<1x2x4x4xf32>
    %cw = ge.read_variable @cw_var : tensor<5x2x3x3xf32>
    %ck = ge.read_variable @ck_var : tensor<5x1x1xf32>
    %c = ge.conv2d %i, %cw {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<5x2x3x3xf32>) -> tensor<1x5x4x4xf32>
    %cs = ge.mul %c, %ck : (tensor<1x5x4x4xf32>, tensor<5x1x1xf32>) -> tensor<1x5x4x4xf32>
    func.return %ys, %cs : tensor<2x3xf32>, tensor<1x5x4x4xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<4x3xf32>
// CHECK-NEXT:   ge.variable @b_var : tensor<3xf32>
// CHECK-NEXT:   ge.variable @k_var : tensor<3xf32>
// CHECK-NEXT:   ge.variable @s_var : tensor<3xf32>
// CHECK-NEXT:   ge.variable @cw_var : tensor<5x2x3x3xf32>
// CHECK-NEXT:   ge.variable @ck_var : tensor<5x1x1xf32>
// CHECK-NEXT:   func.func @var_infer_graph() -> (tensor<2x3xf32>, tensor<1x5x4x4xf32>) {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<4x3xf32>
// CHECK-NEXT:     %b = ge.read_variable @b_var : tensor<3xf32>
// CHECK-NEXT:     %k = ge.read_variable @k_var : tensor<3xf32>
// CHECK-NEXT:     %s = ge.read_variable @s_var : tensor<3xf32>
// CHECK-NEXT:     %yk = ge.mul %w, %k : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT:     %yk_1 = ge.matmul %x, %yk : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %yk_2 = ge.mul %b, %k : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:     %ys = ge.sub %yk_2, %s : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:     %ys_1 = ge.add %yk_1, %ys : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %i = ge.data "i" index 1 : tensor<1x2x4x4xf32>
// CHECK-NEXT:     %cw = ge.read_variable @cw_var : tensor<5x2x3x3xf32>
// CHECK-NEXT:     %ck = ge.read_variable @ck_var : tensor<5x1x1xf32>
// CHECK-NEXT:     %c = ge.reshape %ck : tensor<5x1x1xf32> -> tensor<5x1x1x1xf32>
// CHECK-NEXT:     %c_1 = ge.mul %cw, %c : (tensor<5x2x3x3xf32>, tensor<5x1x1x1xf32>) -> tensor<5x2x3x3xf32>
// CHECK-NEXT:     %c_2 = ge.conv2d %i, %c_1 {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<5x2x3x3xf32>) -> tensor<1x5x4x4xf32>
// CHECK-NEXT:     func.return %ys_1, %c_2 : tensor<2x3xf32>, tensor<1x5x4x4xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// Left alone: a per-row scale (not a column of W), a matmul result used twice, a shift
// subtracted *from* a weight (the activation would be negated), two weight-only operands,
// and anything in a function that writes a variable.
builtin.module {
  ge.variable @w_var : tensor<4x3xf32>
  ge.variable @r_var : tensor<2x1xf32>
  ge.variable @k_var : tensor<3xf32>
  func.func @var_init_graph() {
    %w = ge.const "w" = dense<1.0> : tensor<4x3xf32>
    %k = ge.const "k" = dense<2.0> : tensor<3xf32>
    %x = ge.const "x" = dense<1.0> : tensor<2x4xf32>
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %yk = ge.mul %y, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    ge.assign @w_var, %w : tensor<4x3xf32>
    func.return
  }
  func.func @var_infer_graph() -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<4x3xf32>) {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.read_variable @w_var : tensor<4x3xf32>
    %r = ge.read_variable @r_var : tensor<2x1xf32>
    %k = ge.read_variable @k_var : tensor<3xf32>
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %yr = ge.mul %y, %r : (tensor<2x3xf32>, tensor<2x1xf32>) -> tensor<2x3xf32>
    %y2 = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %y2k = ge.mul %y2, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %y2s = ge.sub %k, %y2 : (tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %y2t = ge.add %y2s, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %wk = ge.mul %w, %k : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
    func.return %yr, %y2k, %y2t, %wk : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<4x3xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<4x3xf32>
// CHECK-NEXT:   ge.variable @r_var : tensor<2x1xf32>
// CHECK-NEXT:   ge.variable @k_var : tensor<3xf32>
// CHECK-NEXT:   func.func @var_init_graph() {
// CHECK-NEXT:     %w = ge.const "w" = dense<1.000000e+00> : tensor<4x3xf32>
// CHECK-NEXT:     %k = ge.const "k" = dense<2.000000e+00> : tensor<3xf32>
// CHECK-NEXT:     %x = ge.const "x" = dense<1.000000e+00> : tensor<2x4xf32>
// CHECK-NEXT:     %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %yk = ge.mul %y, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     ge.assign @w_var, %w : tensor<4x3xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_infer_graph() -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<4x3xf32>) {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<4x3xf32>
// CHECK-NEXT:     %r = ge.read_variable @r_var : tensor<2x1xf32>
// CHECK-NEXT:     %k = ge.read_variable @k_var : tensor<3xf32>
// CHECK-NEXT:     %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %yr = ge.mul %y, %r : (tensor<2x3xf32>, tensor<2x1xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %y2 = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %y2k = ge.mul %y2, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %y2s = ge.sub %k, %y2 : (tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %y2t = ge.add %y2s, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %wk = ge.mul %w, %k : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT:     func.return %yr, %y2k, %y2t, %wk : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<4x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// A Gemm with transB (W stored [out, in]): the scale goes into W's rows and the transpose,
// which the matmul reads for free, stays.
builtin.module {
  ge.variable @v_var : tensor<3x4xf32>
  ge.variable @k_var : tensor<3xf32>
  func.func @var_infer_graph() -> tensor<2x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %v = ge.read_variable @v_var : tensor<3x4xf32>
    %k = ge.read_variable @k_var : tensor<3xf32>
    %vt = ge.transpose %v {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
    %y = ge.matmul %x, %vt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %yk = ge.mul %y, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    func.return %yk : tensor<2x3xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @v_var : tensor<3x4xf32>
// CHECK-NEXT:   ge.variable @k_var : tensor<3xf32>
// CHECK-NEXT:   func.func @var_infer_graph() -> tensor<2x3xf32> {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %v = ge.read_variable @v_var : tensor<3x4xf32>
// CHECK-NEXT:     %k = ge.read_variable @k_var : tensor<3xf32>
// CHECK-NEXT:     %yk = ge.reshape %k : tensor<3xf32> -> tensor<3x1xf32>
// CHECK-NEXT:     %yk_1 = ge.mul %v, %yk : (tensor<3x4xf32>, tensor<3x1xf32>) -> tensor<3x4xf32>
// CHECK-NEXT:     %vt = ge.transpose %yk_1 {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
// CHECK-NEXT:     %yk_2 = ge.matmul %x, %vt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     func.return %yk_2 : tensor<2x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// Two weight-only scales in a row on an activation no weight can take (a pre-activation
// BatchNorm, then an affine Mul, before a ReLU): one scale, their product (weight-only).
builtin.module {
  ge.variable @k1_var : tensor<3x1x1xf32>
  ge.variable @k2_var : tensor<3x1x1xf32>
  func.func @var_infer_graph() -> tensor<1x3x2x2xf32> {
    %x = ge.data "x" index 0 : tensor<1x3x2x2xf32>
    %k1 = ge.read_variable @k1_var : tensor<3x1x1xf32>
    %k2 = ge.read_variable @k2_var : tensor<3x1x1xf32>
    %a = ge.mul %x, %k1 : (tensor<1x3x2x2xf32>, tensor<3x1x1xf32>) -> tensor<1x3x2x2xf32>
    %b = ge.mul %k2, %a : (tensor<3x1x1xf32>, tensor<1x3x2x2xf32>) -> tensor<1x3x2x2xf32>
    %r = ge.relu %b : tensor<1x3x2x2xf32>
    func.return %r : tensor<1x3x2x2xf32>
  }
}

// CHECK:        func.func @var_infer_graph() -> tensor<1x3x2x2xf32> {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<1x3x2x2xf32>
// CHECK-NEXT:     %k1 = ge.read_variable @k1_var : tensor<3x1x1xf32>
// CHECK-NEXT:     %k2 = ge.read_variable @k2_var : tensor<3x1x1xf32>
// CHECK-NEXT:     [[K:%.*]] = ge.mul %k1, %k2 : (tensor<3x1x1xf32>, tensor<3x1x1xf32>) -> tensor<3x1x1xf32>
// CHECK-NEXT:     [[Y:%.*]] = ge.mul %x, [[K]] : (tensor<1x3x2x2xf32>, tensor<3x1x1xf32>) -> tensor<1x3x2x2xf32>
// CHECK-NEXT:     %r = ge.relu [[Y]] : tensor<1x3x2x2xf32>
// CHECK-NEXT:     func.return %r : tensor<1x3x2x2xf32>
