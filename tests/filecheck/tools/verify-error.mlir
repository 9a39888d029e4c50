// RUN: not wrc-opt %s 2>&1 | filecheck %s
// RUN: wrc-opt %s --verify-diagnostics | filecheck %s --check-prefix=DIAG

// A verifier error: the message on stderr, then the IR with the failing op marked; exit 1.
// With --verify-diagnostics the same diagnostic goes to stdout and the exit code is 0.

// CHECK-NOT: Traceback
// CHECK: wrc-opt: error: ge.relu: expects a floating-point tensor, got tensor<2xi32>
// CHECK: %1 = "ge.relu"(%0) : (tensor<2xi32>) -> tensor<2xi32>
// CHECK-NEXT: ^^^^
// CHECK-NEXT: | Operation does not verify: ge.relu: expects a floating-point tensor, got tensor<2xi32>
// CHECK-NOT: Traceback

// DIAG: ge.relu: expects a floating-point tensor, got tensor<2xi32>
// DIAG: | Operation does not verify: ge.relu: expects a floating-point tensor, got tensor<2xi32>
builtin.module {
  %0 = ge.data "x" index 0 : tensor<2xi32>
  %1 = ge.relu %0 : tensor<2xi32>
}
