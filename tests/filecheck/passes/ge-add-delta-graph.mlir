// RUN: wrc-opt %s -p 'ge-add-delta-graph{deltas="w=lora:2","v=lora:1","b=dense"}' | filecheck %s
// RUN: wrc-opt %s -p 'ge-add-delta-graph{deltas="*=lora:3"}' | filecheck %s --check-prefix=GLOB
// RUN: wrc-opt %s -p 'ge-add-delta-graph{deltas="w=lora:2:out_in"}' | filecheck %s --check-prefix=LAYOUT
// RUN: wrc-opt %s -p 'ge-add-delta-graph{deltas="w=lora:2","v=lora:1","b=dense"},ge-fold-weight-scales,ge-hoist-weight-only,convert-ge-to-linalg,ge-bufferize,convert-linalg-to-loops' | filecheck %s --check-prefix=LOOPS
// RUN: not wrc-opt %s -p 'ge-add-delta-graph' 2>&1 | filecheck %s --check-prefix=NONE
// RUN: not wrc-opt %s -p 'ge-add-delta-graph{deltas="nope=dense"}' 2>&1 | filecheck %s --check-prefix=UNKNOWN
// RUN: not wrc-opt %s -p 'ge-add-delta-graph{deltas="w=lora:0"}' 2>&1 | filecheck %s --check-prefix=KIND
// RUN: not wrc-opt %s -p 'ge-add-delta-graph{deltas="w=lora:4"}' 2>&1 | filecheck %s --check-prefix=RANK
// RUN: not wrc-opt %s -p 'ge-add-delta-graph{deltas="b=lora:1"}' 2>&1 | filecheck %s --check-prefix=RANK1
// RUN: not wrc-opt %s -p 'ge-add-delta-graph{deltas="n=dense"}' 2>&1 | filecheck %s --check-prefix=INT
// RUN: not wrc-opt %s -p 'ge-add-delta-graph{deltas="w=dense","*=lora:1"}' 2>&1 | filecheck %s --check-prefix=TWICE
// RUN: not wrc-opt %s -p 'ge-add-delta-graph{deltas="w=dense"},ge-add-delta-graph{deltas="w=dense"}' 2>&1 | filecheck %s --check-prefix=AGAIN

// The output of ge-split-weight-refreshable for weights w, v, b, n. GE's three graphs are
// left exactly as they are; @var_delta_graph comes after them. `w` is read as a matmul's
// right operand (stored [in, out]): its delta is (sA)ᵀ @ Bᵀ; `v` through a transpose (stored
// [out, in], as PyTorch's Linear): B @ sA. The scale multiplies the small factor A.
builtin.module {
  ge.variable @w_var : tensor<4x3xf32>
  ge.variable @v_var : tensor<3x3xf32>
  ge.variable @b_var : tensor<3xf32>
  ge.variable @n_var : tensor<3xi32>
  func.func @var_init_graph() {
    %0 = ge.const "w" : tensor<4x3xf32>
    ge.assign @w_var, %0 {name = "w_assign"} : tensor<4x3xf32>
    %1 = ge.const "v" : tensor<3x3xf32>
    ge.assign @v_var, %1 {name = "v_assign"} : tensor<3x3xf32>
    %2 = ge.const "b" : tensor<3xf32>
    ge.assign @b_var, %2 {name = "b_assign"} : tensor<3xf32>
    %3 = ge.const "n" : tensor<3xi32>
    ge.assign @n_var, %3 {name = "n_assign"} : tensor<3xi32>
    func.return
  }
  func.func @var_update_graph() {
    %0 = ge.data "w_var_data" index 0 : tensor<*xf32>
    ge.assign_if_nonempty @w_var, %0 : tensor<*xf32>
    %1 = ge.data "v_var_data" index 1 : tensor<*xf32>
    ge.assign_if_nonempty @v_var, %1 : tensor<*xf32>
    %2 = ge.data "b_var_data" index 2 : tensor<*xf32>
    ge.assign_if_nonempty @b_var, %2 : tensor<*xf32>
    %3 = ge.data "n_var_data" index 3 : tensor<*xi32>
    ge.assign_if_nonempty @n_var, %3 : tensor<*xi32>
    func.return
  }
  func.func @var_infer_graph() -> tensor<2x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.read_variable @w_var : tensor<4x3xf32>
    %v = ge.read_variable @v_var : tensor<3x3xf32>
    %b = ge.read_variable @b_var : tensor<3xf32>
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %vt = ge.transpose %v {perm = array<i64: 1, 0>} : tensor<3x3xf32> -> tensor<3x3xf32>
    %y2 = ge.matmul %y, %vt : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x3xf32>
    %z = ge.add %y2, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    func.return %z : tensor<2x3xf32>
  }
}

// CHECK:        func.func @var_infer_graph() -> tensor<2x3xf32> {
// CHECK:          func.return %z : tensor<2x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_delta_graph() {
// CHECK-NEXT:     %0 = ge.data "w_var_base" index 0 : tensor<4x3xf32>
// CHECK-NEXT:     %1 = ge.data "w_var_lora_a" index 1 : tensor<2x4xf32>
// CHECK-NEXT:     %2 = ge.data "w_var_lora_b" index 2 : tensor<3x2xf32>
// CHECK-NEXT:     %3 = ge.data "w_var_lora_scale" index 3 : tensor<f32>
// CHECK-NEXT:     %4 = ge.mul %1, %3 : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
// CHECK-NEXT:     %5 = ge.transpose %4 {perm = array<i64: 1, 0>} : tensor<2x4xf32> -> tensor<4x2xf32>
// CHECK-NEXT:     %6 = ge.transpose %2 {perm = array<i64: 1, 0>} : tensor<3x2xf32> -> tensor<2x3xf32>
// CHECK-NEXT:     %7 = ge.matmul %5, %6 : (tensor<4x2xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT:     %8 = ge.add %0, %7 : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
// CHECK-NEXT:     ge.assign @w_var, %8 : tensor<4x3xf32>
// CHECK-NEXT:     %9 = ge.data "v_var_base" index 4 : tensor<3x3xf32>
// CHECK-NEXT:     %10 = ge.data "v_var_lora_a" index 5 : tensor<1x3xf32>
// CHECK-NEXT:     %11 = ge.data "v_var_lora_b" index 6 : tensor<3x1xf32>
// CHECK-NEXT:     %12 = ge.data "v_var_lora_scale" index 7 : tensor<f32>
// CHECK-NEXT:     %13 = ge.mul %10, %12 : (tensor<1x3xf32>, tensor<f32>) -> tensor<1x3xf32>
// CHECK-NEXT:     %14 = ge.matmul %11, %13 : (tensor<3x1xf32>, tensor<1x3xf32>) -> tensor<3x3xf32>
// CHECK-NEXT:     %15 = ge.add %9, %14 : (tensor<3x3xf32>, tensor<3x3xf32>) -> tensor<3x3xf32>
// CHECK-NEXT:     ge.assign @v_var, %15 : tensor<3x3xf32>
// CHECK-NEXT:     %16 = ge.data "b_var_base" index 8 : tensor<3xf32>
// CHECK-NEXT:     %17 = ge.data "b_var_delta" index 9 : tensor<3xf32>
// CHECK-NEXT:     %18 = ge.add %16, %17 : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:     ge.assign @b_var, %18 : tensor<3xf32>
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT: }

// A glob picks the weights its kind fits: the 2-D float ones of rank >= 3, in declaration order.
// GLOB:      func.func @var_delta_graph() {
// GLOB-NEXT:   %0 = ge.data "w_var_base" index 0 : tensor<4x3xf32>
// GLOB-NEXT:   %1 = ge.data "w_var_lora_a" index 1 : tensor<3x4xf32>
// GLOB:        ge.assign @w_var
// GLOB-NEXT:   %{{.*}} = ge.data "v_var_base" index 4 : tensor<3x3xf32>
// GLOB:        ge.assign @v_var
// GLOB-NEXT:   func.return

// An explicit layout wins over the one the uses suggest.
// LAYOUT:      %1 = ge.data "w_var_lora_a" index 1 : tensor<2x3xf32>
// LAYOUT-NEXT: %2 = ge.data "w_var_lora_b" index 2 : tensor<4x2xf32>
// LAYOUT-NEXT: %3 = ge.data "w_var_lora_scale" index 3 : tensor<f32>
// LAYOUT-NEXT: %4 = ge.mul %1, %3 : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
// LAYOUT-NEXT: %5 = ge.matmul %2, %4 : (tensor<4x2xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>

// Down to loops: the transposes fold into the matmul's indexing map, the delta graph writes
// each adapted variable whole, from its arguments only.
// LOOPS:      func.func @var_delta_graph(%0: memref<4x3xf32> {ge.name = "w_var_base"}, %1: memref<2x4xf32> {ge.name = "w_var_lora_a"}, %2: memref<3x2xf32> {ge.name = "w_var_lora_b"}, %3: memref<f32> {ge.name = "w_var_lora_scale"}
// LOOPS:      %{{.*}} = memref.get_global @w_var : memref<4x3xf32>
// LOOPS-NEXT: "memref.copy"

// NONE-NOT: Traceback
// NONE: wrc-opt: error: ge-add-delta-graph: no deltas given (option `deltas` is empty)
// UNKNOWN: wrc-opt: error: ge-add-delta-graph: delta 'nope=dense': 'nope' is not a refreshable weight (weights: w, v, b, n)
// KIND: wrc-opt: error: ge-add-delta-graph: delta 'w=lora:0': kind 'lora:0' is not dense, lora:R (R > 0) or lora:R:out_in|in_out
// RANK: wrc-opt: error: ge-add-delta-graph: delta 'w=lora:4': weight 'w' has shape [4, 3]: rank 4 is above min(out, in) = 3 (use dense)
// RANK1: wrc-opt: error: ge-add-delta-graph: delta 'b=lora:1': weight 'b' has shape [3]: a low-rank delta needs a 2-D weight (use dense)
// INT: wrc-opt: error: ge-add-delta-graph: delta 'n=dense': weight 'n' is i32: deltas apply to float weights
// TWICE: wrc-opt: error: ge-add-delta-graph: weight 'w' is given a delta twice ('w=dense' and '*=lora:1')
// AGAIN: wrc-opt: error: ge-add-delta-graph: symbol @var_delta_graph already exists
