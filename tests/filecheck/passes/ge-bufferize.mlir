// RUN: wrc-opt %s --split-input-file --verify-diagnostics -p ge-bufferize | filecheck %s
// RUN: wrc-opt %s --split-input-file --verify-diagnostics -p ge-bufferize,convert-linalg-to-loops | filecheck %s --check-prefix=LOOPS
// RUN: not wrc-opt %s --split-input-file -p ge-bufferize 2>&1 | filecheck %s --check-prefix=ERR

// ge-bufferize: level 2 (linalg on tensors, ge graph ops) to level 3 (linalg on memrefs,
// memref.global for variables and constants, graph inputs as function arguments); see
// docs/internals.md. The second RUN line checks that convert-linalg-to-loops accepts the
// result, the third that an error is a diagnostic, not a traceback (tests/test_lowering.py
// checks that level 3 round-trips through the generic syntax).

// ERR-NOT: Traceback
// ERR: wrc-opt: error: ge.const "w_var": a ge.variable of the same name exists

// LOOPS: scf.for
// LOOPS-NOT: {{linalg\.|tensor\.}}

// The three graphs of a weight-refreshable model. Variables become public uninitialized
// globals; constants private constant globals (inline value kept, else the bytes come from
// the weight table); update-graph inputs become the variable's memref + an i1 flag.
builtin.module {
  ge.variable @w_var : tensor<3x2xf32>
  ge.variable @s_var : tensor<f32>
  func.func @var_init_graph() {
    %0 = ge.const "w" : tensor<3x2xf32>
    ge.assign @w_var, %0 {name = "w_assign"} : tensor<3x2xf32>
    %1 = ge.const "s" = dense<5.0e-01> : tensor<f32>
    ge.assign @s_var, %1 {name = "s_assign"} : tensor<f32>
    func.return
  }
  func.func @var_update_graph() {
    %0 = ge.data "w_var_data" index 0 : tensor<*xf32>
    ge.assign_if_nonempty @w_var, %0 : tensor<*xf32>
    %1 = ge.data "s_var_data" index 1 : tensor<*xf32>
    ge.assign_if_nonempty @s_var, %1 : tensor<*xf32>
    func.return
  }
  func.func @var_infer_graph() -> (tensor<4x2xf32>, tensor<8xf32>) {
    %x = ge.data "x" index 0 : tensor<4x3xf32>
    %w = ge.read_variable @w_var : tensor<3x2xf32>
    %e = tensor.empty() : tensor<4x2xf32>
    %zero = arith.constant 0.000000e+00 : f32
    %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x2xf32>) -> tensor<4x2xf32>
    %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : tensor<4x3xf32>, tensor<3x2xf32>) outs(%f : tensor<4x2xf32>) {
    ^bb0(%a: f32, %b: f32, %acc: f32):
      %p = arith.mulf %a, %b : f32
      %s = arith.addf %acc, %p : f32
      linalg.yield %s : f32
    } -> tensor<4x2xf32>
    %r = tensor.collapse_shape %y [[0, 1]] : tensor<4x2xf32> into tensor<8xf32>
    func.return %y, %r : tensor<4x2xf32>, tensor<8xf32>
  }
}

// CHECK:      builtin.module {
// CHECK-NEXT:   "memref.global"() <{sym_name = "w_var", type = memref<3x2xf32>, initial_value, sym_visibility = "public"}> {ge.variable} : () -> ()
// CHECK-NEXT:   "memref.global"() <{sym_name = "s_var", type = memref<f32>, initial_value, sym_visibility = "public"}> {ge.variable} : () -> ()
// CHECK-NEXT:   "memref.global"() <{sym_name = "w", type = memref<3x2xf32>, initial_value, sym_visibility = "private", constant}> {ge.constant} : () -> ()
// CHECK-NEXT:   "memref.global"() <{sym_name = "s", type = memref<f32>, initial_value = dense<5.000000e-01> : tensor<f32>, sym_visibility = "private", constant}> {ge.constant} : () -> ()
// CHECK-NEXT:   func.func @var_init_graph() {
// CHECK-NEXT:     %[[C:.*]] = memref.get_global @w : memref<3x2xf32>
// CHECK-NEXT:     %[[V:.*]] = memref.get_global @w_var : memref<3x2xf32>
// CHECK-NEXT:     "memref.copy"(%[[C]], %[[V]]) : (memref<3x2xf32>, memref<3x2xf32>) -> ()
// CHECK-NEXT:     %[[C:.*]] = memref.get_global @s : memref<f32>
// CHECK-NEXT:     %[[V:.*]] = memref.get_global @s_var : memref<f32>
// CHECK-NEXT:     "memref.copy"(%[[C]], %[[V]]) : (memref<f32>, memref<f32>) -> ()
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @var_update_graph(%[[D0:.*]]: memref<3x2xf32> {ge.name = "w_var_data", ge.optional}, %[[P0:.*]]: i1, %[[D1:.*]]: memref<f32> {ge.name = "s_var_data", ge.optional}, %[[P1:.*]]: i1) {
// CHECK-NEXT:     scf.if %[[P0]] {
// CHECK-NEXT:       %[[V:.*]] = memref.get_global @w_var : memref<3x2xf32>
// CHECK-NEXT:       "memref.copy"(%[[D0]], %[[V]]) : (memref<3x2xf32>, memref<3x2xf32>) -> ()
// CHECK-NEXT:     }
// CHECK-NEXT:     scf.if %[[P1]] {
// CHECK-NEXT:       %[[V:.*]] = memref.get_global @s_var : memref<f32>
// CHECK-NEXT:       "memref.copy"(%[[D1]], %[[V]]) : (memref<f32>, memref<f32>) -> ()
// CHECK-NEXT:     }
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// The fill and the generic reuse the tensor.empty's buffer; the collapsed view of a
// returned buffer is copied so that the two results do not alias.
// CHECK-NEXT:   func.func @var_infer_graph(%x: memref<4x3xf32> {ge.name = "x"}) -> (memref<4x2xf32>, memref<8xf32>) {
// CHECK-NEXT:     %w = memref.get_global @w_var : memref<3x2xf32>
// CHECK-NEXT:     %e = memref.alloc() : memref<4x2xf32>
// CHECK-NEXT:     %zero = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:     linalg.fill ins(%zero : f32) outs(%e : memref<4x2xf32>)
// CHECK-NEXT:     linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %w : memref<4x3xf32>, memref<3x2xf32>) outs(%e : memref<4x2xf32>) {
// CHECK-NEXT:     ^bb0(%a: f32, %b: f32, %acc: f32):
// CHECK-NEXT:       %p = arith.mulf %a, %b : f32
// CHECK-NEXT:       %s = arith.addf %acc, %p : f32
// CHECK-NEXT:       linalg.yield %s : f32
// CHECK-NEXT:     }
// CHECK-NEXT:     %r = memref.collapse_shape %e {{\[}}[0 : i64, 1 : i64]] : memref<4x2xf32> into memref<8xf32>
// CHECK-NEXT:     %[[R:.*]] = memref.alloc() : memref<8xf32>
// CHECK-NEXT:     "memref.copy"(%r, %[[R]]) : (memref<8xf32>, memref<8xf32>) -> ()
// CHECK-NEXT:     func.return %e, %[[R]] : memref<4x2xf32>, memref<8xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

builtin.module {
  ge.variable @v : tensor<2xf32>
  // Output buffers: in place when the outs tensor has no other use; a fresh buffer for a
  // shared tensor.empty (which then goes away); a copy when the outs value is read again
  // later or is not a buffer of the graph's own.
  func.func @out_buffers() -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) {
    %x = ge.data "x" index 0 : tensor<2xf32>
    %e = tensor.empty() : tensor<2xf32>
    %one = arith.constant 1.000000e+00 : f32
    %f1 = linalg.fill ins(%one : f32) outs(%e : tensor<2xf32>) -> tensor<2xf32>
    %f2 = linalg.fill ins(%one : f32) outs(%e : tensor<2xf32>) -> tensor<2xf32>
    %g = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%x : tensor<2xf32>) outs(%f1 : tensor<2xf32>) {
    ^bb0(%a: f32, %acc: f32):
      %s = arith.addf %acc, %a : f32
      linalg.yield %s : f32
    } -> tensor<2xf32>
    %h = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%x : tensor<2xf32>) outs(%f2 : tensor<2xf32>) {
    ^bb0(%a: f32, %acc: f32):
      %s = arith.mulf %acc, %a : f32
      linalg.yield %s : f32
    } -> tensor<2xf32>
    %k = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%x : tensor<2xf32>) outs(%x : tensor<2xf32>) {
    ^bb0(%a: f32, %acc: f32):
      %s = arith.addf %acc, %a : f32
      linalg.yield %s : f32
    } -> tensor<2xf32>
    func.return %g, %f2, %k : tensor<2xf32>, tensor<2xf32>, tensor<2xf32>
  }
  // Outputs never alias an input, a weight or another output.
  func.func @aliased_results() -> (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<1x2xf32>) {
    %x = ge.data "x" index 0 : tensor<2xf32>
    %r = ge.read_variable @v : tensor<2xf32>
    %c = ge.const "c" = dense<[1.0, 2.0]> : tensor<2xf32>
    %e = tensor.expand_shape %c [[0, 1]] output_shape [1, 2] : tensor<2xf32> into tensor<1x2xf32>
    func.return %x, %r, %x, %e : tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<1x2xf32>
  }
  // A variable read by a graph that also writes it is snapshotted; a ranked input of
  // ge.assign_if_nonempty is optional too; a static non-empty operand is always assigned.
  func.func @read_then_write() -> tensor<2xf32> {
    %old = ge.read_variable @v : tensor<2xf32>
    %d = ge.data "d" index 0 : tensor<2xf32>
    ge.assign_if_nonempty @v, %d : tensor<2xf32>
    %c = ge.const "c" = dense<[1.0, 2.0]> : tensor<2xf32>
    ge.assign_if_nonempty @v, %c : tensor<2xf32>
    func.return %old : tensor<2xf32>
  }
}

// CHECK:      "memref.global"() <{sym_name = "v", type = memref<2xf32>, initial_value, sym_visibility = "public"}> {ge.variable} : () -> ()
// One global for the constant "c" used by two graphs.
// CHECK-NEXT: "memref.global"() <{sym_name = "c", type = memref<2xf32>, initial_value = dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>, sym_visibility = "private", constant}> {ge.constant} : () -> ()
// CHECK-NEXT: func.func @out_buffers(%x: memref<2xf32> {ge.name = "x"}) -> (memref<2xf32>, memref<2xf32>, memref<2xf32>) {
// CHECK-NEXT:   %one = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:   %f1 = memref.alloc() : memref<2xf32>
// CHECK-NEXT:   linalg.fill ins(%one : f32) outs(%f1 : memref<2xf32>)
// CHECK-NEXT:   %f2 = memref.alloc() : memref<2xf32>
// CHECK-NEXT:   linalg.fill ins(%one : f32) outs(%f2 : memref<2xf32>)
// CHECK-NEXT:   linalg.generic {{.*}} ins(%x : memref<2xf32>) outs(%f1 : memref<2xf32>) {
// CHECK:        %h = memref.alloc() : memref<2xf32>
// CHECK-NEXT:   "memref.copy"(%f2, %h) : (memref<2xf32>, memref<2xf32>) -> ()
// CHECK-NEXT:   linalg.generic {{.*}} ins(%x : memref<2xf32>) outs(%h : memref<2xf32>) {
// CHECK:        %k = memref.alloc() : memref<2xf32>
// CHECK-NEXT:   "memref.copy"(%x, %k) : (memref<2xf32>, memref<2xf32>) -> ()
// CHECK-NEXT:   linalg.generic {{.*}} ins(%x : memref<2xf32>) outs(%k : memref<2xf32>) {
// CHECK:        func.return %f1, %f2, %k : memref<2xf32>, memref<2xf32>, memref<2xf32>
// CHECK-NEXT: }
// CHECK-NEXT: func.func @aliased_results(%x: memref<2xf32> {ge.name = "x"}) -> (memref<2xf32>, memref<2xf32>, memref<2xf32>, memref<1x2xf32>) {
// CHECK-NEXT:   %r = memref.get_global @v : memref<2xf32>
// CHECK-NEXT:   %c = memref.get_global @c : memref<2xf32>
// CHECK-NEXT:   %e = memref.expand_shape %c {{\[}}[0 : i64, 1 : i64]] output_shape [1, 2] : memref<2xf32> into memref<1x2xf32>
// CHECK-NEXT:   %[[A:.*]] = memref.alloc() : memref<2xf32>
// CHECK-NEXT:   "memref.copy"(%x, %[[A]])
// CHECK-NEXT:   %[[B:.*]] = memref.alloc() : memref<2xf32>
// CHECK-NEXT:   "memref.copy"(%r, %[[B]])
// CHECK-NEXT:   %[[C:.*]] = memref.alloc() : memref<2xf32>
// CHECK-NEXT:   "memref.copy"(%x, %[[C]])
// CHECK-NEXT:   %[[D:.*]] = memref.alloc() : memref<1x2xf32>
// CHECK-NEXT:   "memref.copy"(%e, %[[D]])
// CHECK-NEXT:   func.return %[[A]], %[[B]], %[[C]], %[[D]] : memref<2xf32>, memref<2xf32>, memref<2xf32>, memref<1x2xf32>
// CHECK-NEXT: }
// CHECK-NEXT: func.func @read_then_write(%d: memref<2xf32> {ge.name = "d", ge.optional}, %d_nonempty: i1) -> memref<2xf32> {
// CHECK-NEXT:   %[[G:.*]] = memref.get_global @v : memref<2xf32>
// CHECK-NEXT:   %old = memref.alloc() : memref<2xf32>
// CHECK-NEXT:   "memref.copy"(%[[G]], %old)
// CHECK-NEXT:   scf.if %d_nonempty {
// CHECK-NEXT:     %[[G:.*]] = memref.get_global @v : memref<2xf32>
// CHECK-NEXT:     "memref.copy"(%d, %[[G]])
// CHECK-NEXT:   }
// CHECK-NEXT:   %c = memref.get_global @c : memref<2xf32>
// CHECK-NEXT:   %[[G:.*]] = memref.get_global @v : memref<2xf32>
// CHECK-NEXT:   "memref.copy"(%c, %[[G]])
// CHECK-NEXT:   func.return %old : memref<2xf32>
// CHECK-NEXT: }

// -----

// Errors (LoweringError diagnostics naming the culprit).
builtin.module {
  ge.variable @w_var : tensor<2xf32>
  func.func @main() -> tensor<2xf32> {
    %w = ge.const "w_var" : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}

// CHECK: ge.const "w_var": a ge.variable of the same name exists

// -----

builtin.module {
  func.func @a() -> tensor<3x2xf32> {
    %w = ge.const "w" : tensor<3x2xf32>
    func.return %w : tensor<3x2xf32>
  }
  func.func @b() -> tensor<2x3xf32> {
    %w = ge.const "w" : tensor<2x3xf32>
    func.return %w : tensor<2x3xf32>
  }
}

// CHECK: ge.const "w": defined with two types, tensor<3x2xf32> and tensor<2x3xf32>

// -----

builtin.module {
  func.func @main() -> tensor<*xf32> {
    %x = ge.data "x" index 0 : tensor<*xf32>
    func.return %x : tensor<*xf32>
  }
}

// CHECK: ge.data "x": unranked input tensor<*xf32> only allowed as an input of ge.assign_if_nonempty

// -----

builtin.module {
  ge.variable @v : tensor<2xf32>
  func.func @main() -> tensor<2xf32> {
    %x = ge.data "x" index 0 : tensor<2xf32>
    ge.assign_if_nonempty @v, %x : tensor<2xf32>
    func.return %x : tensor<2xf32>
  }
}

// CHECK: ge.data "x": an input of ge.assign_if_nonempty may be empty and has no other use

// -----

builtin.module {
  func.func @main() -> tensor<?x3xf32> {
    %x = ge.data "x" index 0 : tensor<?x3xf32>
    func.return %x : tensor<?x3xf32>
  }
}

// CHECK: ge.data "x": dynamic dimension in tensor<?x3xf32> not supported; give the graph inputs static shapes

// -----

builtin.module {
  func.func @main() -> tensor<2xf32> {
    %x = ge.data "x" index 1 : tensor<2xf32>
    func.return %x : tensor<2xf32>
  }
}

// CHECK: func @main: ge.data indices [1] must be 0..0, each once

// -----

builtin.module {
  func.func @main() -> tensor<2xf32> {
    %x = ge.data "x" index 0 : tensor<2xf32>
    %y = ge.relu %x : tensor<2xf32>
    func.return %y : tensor<2xf32>
  }
}

// CHECK: ge.relu: not lowered; run convert-ge-to-linalg before ge-bufferize
