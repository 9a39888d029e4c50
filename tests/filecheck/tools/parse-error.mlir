// RUN: not wrc-opt %s 2>&1 | filecheck %s

// A syntax error is a diagnostic pointing at the source (file:line:col), exit code 1.

// CHECK-NOT: Traceback
// CHECK: wrc-opt: error: {{.*}}parse-error.mlir:[[# @LINE + 5]]:1
// CHECK: Expected '>' after builtin parameter list
// CHECK-NOT: Traceback
builtin.module {
  %0 = ge.data "x" index 0 : tensor<2xf32
}
