// RUN: rm -f %t
// RUN: wrc-opt %s -p 'ge-const-to-var{names=w}' -o %t | filecheck %s --check-prefix=STDOUT --allow-empty
// RUN: filecheck %s < %t

// -o writes the result to the file and nothing to stdout.

// STDOUT-NOT: {{.}}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<2xf32> {init = "w"}
// CHECK-NEXT:   func.func @main() -> tensor<2xf32> {
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<2xf32>
// CHECK-NEXT:     func.return %w : tensor<2xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

builtin.module {
  func.func @main() -> tensor<2xf32> {
    %w = ge.const "w" : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}
