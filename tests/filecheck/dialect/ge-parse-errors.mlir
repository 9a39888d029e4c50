// RUN: wrc-opt %s --split-input-file --parsing-diagnostics | filecheck %s

// The custom syntax of ge.const rejects what it cannot represent.

%0 = ge.const "c" = [1.0, 2.0] : tensor<2xf32>
// CHECK: ge.const expects a dense tensor value

// -----

%0 = ge.const "c" = dense<1.0> : vector<2xf32>
// CHECK: ge.const expects a dense tensor value

// -----

%0 = ge.const "c" : memref<2xf32>
// CHECK: ge.const expects a ranked tensor type

// -----

%0 = ge.const "c" : tensor<*xf32>
// CHECK: ge.const expects a ranked tensor type

// -----

%0 = ge.const c : tensor<2xf32>
// CHECK: string literal expected for the constant name
