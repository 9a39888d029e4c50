// RUN: wrc-opt %s --split-input-file | filecheck %s
// RUN: cat %s | wrc-opt --split-input-file | filecheck %s

// Each chunk is parsed and printed on its own; the separators come back (written
// {{//}} in the CHECK line so that the splitter does not cut there). The chunks reuse
// the symbol @main and the value names: they are independent modules.

// CHECK: builtin.module {
// CHECK-NEXT:   func.func @main() -> tensor<2xf32> {
// CHECK-NEXT:     %w = ge.const "w" : tensor<2xf32>
// CHECK-NEXT:     func.return %w : tensor<2xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }
// CHECK-EMPTY:
// CHECK-NEXT: {{//}} -----
// CHECK-NEXT: builtin.module {
// CHECK-NEXT:   func.func @main() -> tensor<3xi32> {
// CHECK-NEXT:     %w = ge.const "w" = dense<[1, 2, 3]> : tensor<3xi32>
// CHECK-NEXT:     func.return %w : tensor<3xi32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

builtin.module {
  func.func @main() -> tensor<2xf32> {
    %w = ge.const "w" : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}

// -----

builtin.module {
  func.func @main() -> tensor<3xi32> {
    %w = ge.const "w" = dense<[1, 2, 3]> : tensor<3xi32>
    func.return %w : tensor<3xi32>
  }
}
