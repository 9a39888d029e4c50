// RUN: not wrc-opt %s 2>&1 | filecheck %s
// RUN: not wrc-opt --print-op-generic %s 2>&1 | filecheck %s

// An op the ge dialect does not define is reported where it is used, exit code 1.

// CHECK-NOT: Traceback
// CHECK: wrc-opt: error: {{.*}}unknown-op.mlir:[[# @LINE + 6]]:17
// CHECK: Operation ge.bogus is not registered
// CHECK-NOT: Traceback
builtin.module {
  %0 = ge.data "x" index 0 : tensor<2xf32>
  %1 = ge.relu %0 : tensor<2xf32>
  %2 = ge.bogus %1 : tensor<2xf32>
}
