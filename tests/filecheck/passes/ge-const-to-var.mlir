// RUN: wrc-opt %s --split-input-file --verify-diagnostics -p 'ge-const-to-var{names=w,b}' | filecheck %s
// RUN: not wrc-opt %s --split-input-file -p 'ge-const-to-var' 2>&1 | filecheck %s --check-prefix=NO-NAMES
// RUN: not wrc-opt %s --split-input-file -p 'ge-const-to-var{names=""}' 2>&1 | filecheck %s --check-prefix=EMPTY-NAME
// RUN: not wrc-opt %s --split-input-file -p 'ge-const-to-var{names=w,""}' 2>&1 | filecheck %s --check-prefix=EMPTY-NAME2
// RUN: not wrc-opt %s --split-input-file -p 'ge-const-to-var{names=w,b,w}' 2>&1 | filecheck %s --check-prefix=DUP-NAME
// RUN: not wrc-opt %s --split-input-file -p 'ge-const-to-var{names=w,nope}' 2>&1 | filecheck %s --check-prefix=NOT-CONST

// Errors about the option itself are raised before the module is looked at.
// NO-NAMES-NOT: Traceback
// NO-NAMES: wrc-opt: error: ge-const-to-var: no constant names given (option `names` is empty)
// EMPTY-NAME: wrc-opt: error: ge-const-to-var: a constant name is empty (names: [''])
// EMPTY-NAME2: wrc-opt: error: ge-const-to-var: a constant name is empty (names: ['w', ''])
// DUP-NAME: wrc-opt: error: ge-const-to-var: constant name "w" is given twice
// NOT-CONST-NOT: Traceback
// NOT-CONST: wrc-opt: error: ge-const-to-var: "nope" is not a ge.const of the graph @main
// NOT-CONST-NOT: builtin.module

// With names=w,b, each case below is followed by its expected output.

// Named constants become variables; `c` is not named and stays a constant.
builtin.module {
  func.func @main() -> tensor<2x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.const "w" : tensor<4x3xf32>
    %b = ge.const "b" = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
    %c = ge.const "c" = dense<0.5> : tensor<f32>
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %z = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %r = ge.mul %z, %c : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    func.return %r : tensor<2x3xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<4x3xf32> {init = "w"}
// CHECK-NEXT:   ge.variable @b_var : tensor<3xf32> {init = "b", init_value = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00]> : tensor<3xf32>}
// CHECK-NEXT:   func.func @main() -> tensor<2x3xf32> {
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

// Variables are declared in `names` order, not in the order the constants appear; a
// constant used by two ge.const ops becomes one variable read twice.
builtin.module {
  func.func @main() -> tensor<3xf32> {
    %b = ge.const "b" : tensor<3xf32>
    %w1 = ge.const "w" : tensor<3xf32>
    %w2 = ge.const "w" : tensor<3xf32>
    %s = ge.add %b, %w1 : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    %t = ge.add %s, %w2 : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    func.return %t : tensor<3xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<3xf32> {init = "w"}
// CHECK-NEXT:   ge.variable @b_var : tensor<3xf32> {init = "b"}
// CHECK-NEXT:   func.func @main() -> tensor<3xf32> {
// CHECK-NEXT:     %b = ge.read_variable @b_var : tensor<3xf32>
// CHECK-NEXT:     %w1 = ge.read_variable @w_var : tensor<3xf32>
// CHECK-NEXT:     %w2 = ge.read_variable @w_var : tensor<3xf32>
// CHECK-NEXT:     %s = ge.add %b, %w1 : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:     %t = ge.add %s, %w2 : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:     func.return %t : tensor<3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// A scalar constant and an integer one; other module-level ops are kept.
builtin.module {
  ge.variable @other : tensor<2xf32>
  func.func @graph() -> (tensor<f32>, tensor<2xi32>) {
    %w = ge.const "w" = dense<0.0> : tensor<f32>
    %b = ge.const "b" = dense<[1, -2]> : tensor<2xi32>
    func.return %w, %b : tensor<f32>, tensor<2xi32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @other : tensor<2xf32>
// CHECK-NEXT:   ge.variable @w_var : tensor<f32> {init = "w", init_value = dense<0.000000e+00> : tensor<f32>}
// CHECK-NEXT:   ge.variable @b_var : tensor<2xi32> {init = "b", init_value = dense<[1, -2]> : tensor<2xi32>}
// CHECK-NEXT:   func.func @graph() -> (tensor<f32>, tensor<2xi32>) {
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<f32>
// CHECK-NEXT:     %b = ge.read_variable @b_var : tensor<2xi32>
// CHECK-NEXT:     func.return %w, %b : tensor<f32>, tensor<2xi32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// -----

// Error: a name that is not a constant of the graph.
builtin.module {
  func.func @main() -> tensor<3xf32> {
    %w = ge.const "w" : tensor<3xf32>
    func.return %w : tensor<3xf32>
  }
}

// CHECK: ge-const-to-var: "b" is not a ge.const of the graph @main

// -----

// Error: a ge.data input or a constant whose name merely starts with the name is not it.
builtin.module {
  func.func @main() -> tensor<3xf32> {
    %x = ge.data "b" index 0 : tensor<3xf32>
    %w = ge.const "w" : tensor<3xf32>
    %b = ge.const "bias" : tensor<3xf32>
    func.return %w : tensor<3xf32>
  }
}

// CHECK: ge-const-to-var: "b" is not a ge.const of the graph @main

// -----

// Error: one constant name, two types.
builtin.module {
  func.func @main() -> tensor<3xf32> {
    %b = ge.const "b" : tensor<3xf32>
    %w1 = ge.const "w" : tensor<3xf32>
    %w2 = ge.const "w" : tensor<1x3xf32>
    func.return %b : tensor<3xf32>
  }
}

// CHECK: ge-const-to-var: ge.const "w" is used with different types tensor<3xf32> and tensor<1x3xf32>

// -----

// Error: one constant name, two inline values.
builtin.module {
  func.func @main() -> tensor<2xf32> {
    %b = ge.const "b" : tensor<2xf32>
    %w1 = ge.const "w" = dense<[1.0, 2.0]> : tensor<2xf32>
    %w2 = ge.const "w" = dense<[1.0, 3.0]> : tensor<2xf32>
    func.return %b : tensor<2xf32>
  }
}

// CHECK: ge-const-to-var: ge.const "w" is used with different values

// -----

// Error: the variable symbol is taken.
builtin.module {
  ge.variable @b_var : tensor<3xf32>
  func.func @main() -> tensor<3xf32> {
    %w = ge.const "w" : tensor<3xf32>
    %b = ge.const "b" : tensor<3xf32>
    func.return %w : tensor<3xf32>
  }
}

// CHECK: ge-const-to-var: symbol @b_var (the variable for "b") already exists

// -----

// Error: no graph.
builtin.module {
  ge.variable @w : tensor<3xf32>
}

// CHECK: ge-const-to-var: expects a module holding exactly one func.func (the graph), found 0 (none)

// -----

// Error: more than one graph.
builtin.module {
  func.func @first() {
    func.return
  }
  func.func @second() {
    func.return
  }
}

// CHECK: ge-const-to-var: expects a module holding exactly one func.func (the graph), found 2 (@first, @second)
