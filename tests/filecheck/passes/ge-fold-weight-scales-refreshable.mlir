// RUN: wrc-opt %s --split-input-file -p ge-fold-weight-scales | filecheck %s

// Weights the update graph writes, read as they are (a Gemm's, under the transpose the matmul
// reads for free, and a convolution's), at least as large as the result: no scaled copy; the
// per-channel scale stays a multiply of the result (distributed over the bias), the shifts
// still merge. A weight the update graph does not write (@cw2_var: written by the init graph
// only) and a 1x1 filter smaller than its result (@pw_var: 10 elements, 80 in the result)
// still take their scale.
builtin.module {
  ge.variable @w_var : tensor<3x4xf32>
  ge.variable @b_var : tensor<3xf32>
  ge.variable @k_var : tensor<3xf32>
  ge.variable @s_var : tensor<3xf32>
  ge.variable @cw_var : tensor<5x2x3x3xf32>
  ge.variable @cw2_var : tensor<5x2x3x3xf32>
  ge.variable @ck_var : tensor<5x1x1xf32>
  ge.variable @pw_var : tensor<5x2x1x1xf32>
  func.func @var_update_graph(%nw : tensor<3x4xf32>, %ncw : tensor<5x2x3x3xf32>, %npw : tensor<5x2x1x1xf32>) {
    ge.assign @w_var, %nw : tensor<3x4xf32>
    ge.assign @cw_var, %ncw : tensor<5x2x3x3xf32>
    ge.assign @pw_var, %npw : tensor<5x2x1x1xf32>
    func.return
  }
  func.func @var_init_graph() {
    %cw2 = ge.const "cw2" = dense<1.0> : tensor<5x2x3x3xf32>
    ge.assign @cw2_var, %cw2 : tensor<5x2x3x3xf32>
    func.return
  }
  func.func @var_infer_graph() -> (tensor<2x3xf32>, tensor<1x5x4x4xf32>, tensor<1x5x4x4xf32>, tensor<1x5x4x4xf32>) {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.read_variable @w_var : tensor<3x4xf32>
    %wt = ge.transpose %w {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
    %b = ge.read_variable @b_var : tensor<3xf32>
    %k = ge.read_variable @k_var : tensor<3xf32>
    %s = ge.read_variable @s_var : tensor<3xf32>
    %y = ge.matmul %x, %wt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %yb = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %yk = ge.mul %yb, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %ys = ge.add %yk, %s : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %i = ge.data "i" index 1 : tensor<1x2x4x4xf32>
    %cw = ge.read_variable @cw_var : tensor<5x2x3x3xf32>
    %ck = ge.read_variable @ck_var : tensor<5x1x1xf32>
    %c = ge.conv2d %i, %cw {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<5x2x3x3xf32>) -> tensor<1x5x4x4xf32>
    %cs = ge.mul %c, %ck : (tensor<1x5x4x4xf32>, tensor<5x1x1xf32>) -> tensor<1x5x4x4xf32>
    %cw2 = ge.read_variable @cw2_var : tensor<5x2x3x3xf32>
    %c2 = ge.conv2d %i, %cw2 {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<5x2x3x3xf32>) -> tensor<1x5x4x4xf32>
    %cs2 = ge.mul %c2, %ck : (tensor<1x5x4x4xf32>, tensor<5x1x1xf32>) -> tensor<1x5x4x4xf32>
    %pw = ge.read_variable @pw_var : tensor<5x2x1x1xf32>
    %p = ge.conv2d %i, %pw {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<5x2x1x1xf32>) -> tensor<1x5x4x4xf32>
    %ps = ge.mul %p, %ck : (tensor<1x5x4x4xf32>, tensor<5x1x1xf32>) -> tensor<1x5x4x4xf32>
    func.return %ys, %cs, %cs2, %ps : tensor<2x3xf32>, tensor<1x5x4x4xf32>, tensor<1x5x4x4xf32>, tensor<1x5x4x4xf32>
  }
}

// CHECK:      func.func @var_infer_graph()
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<3x4xf32>
// CHECK-NEXT:     %wt = ge.transpose %w {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
// CHECK-NEXT:     %b = ge.read_variable @b_var : tensor<3xf32>
// CHECK-NEXT:     %k = ge.read_variable @k_var : tensor<3xf32>
// CHECK-NEXT:     %s = ge.read_variable @s_var : tensor<3xf32>
// CHECK-NEXT:     %y = ge.matmul %x, %wt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %yk = ge.mul %y, %k : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %yk_1 = ge.mul %b, %k : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:     %ys = ge.add %yk_1, %s : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:     %ys_1 = ge.add %yk, %ys : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %i = ge.data "i" index 1 : tensor<1x2x4x4xf32>
// CHECK-NEXT:     %cw = ge.read_variable @cw_var : tensor<5x2x3x3xf32>
// CHECK-NEXT:     %ck = ge.read_variable @ck_var : tensor<5x1x1xf32>
// CHECK-NEXT:     %c = ge.conv2d %i, %cw {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<5x2x3x3xf32>) -> tensor<1x5x4x4xf32>
// CHECK-NEXT:     %cs = ge.mul %c, %ck : (tensor<1x5x4x4xf32>, tensor<5x1x1xf32>) -> tensor<1x5x4x4xf32>
// CHECK-NEXT:     %cw2 = ge.read_variable @cw2_var : tensor<5x2x3x3xf32>
// CHECK-NEXT:     %c2 = ge.reshape %ck : tensor<5x1x1xf32> -> tensor<5x1x1x1xf32>
// CHECK-NEXT:     %c2_1 = ge.mul %cw2, %c2 : (tensor<5x2x3x3xf32>, tensor<5x1x1x1xf32>) -> tensor<5x2x3x3xf32>
// CHECK-NEXT:     %c2_2 = ge.conv2d %i, %c2_1 {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<5x2x3x3xf32>) -> tensor<1x5x4x4xf32>
// CHECK-NEXT:     %pw = ge.read_variable @pw_var : tensor<5x2x1x1xf32>
// CHECK-NEXT:     %p = ge.reshape %ck : tensor<5x1x1xf32> -> tensor<5x1x1x1xf32>
// CHECK-NEXT:     %p_1 = ge.mul %pw, %p : (tensor<5x2x1x1xf32>, tensor<5x1x1x1xf32>) -> tensor<5x2x1x1xf32>
// CHECK-NEXT:     %p_2 = ge.conv2d %i, %p_1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<5x2x1x1xf32>) -> tensor<1x5x4x4xf32>
// CHECK-NEXT:     func.return %ys_1, %cs, %c2_2, %p_2 : tensor<2x3xf32>, tensor<1x5x4x4xf32>, tensor<1x5x4x4xf32>, tensor<1x5x4x4xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }
