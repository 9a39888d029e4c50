// RUN: wrc-opt %s -p convert-ge-to-linalg | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize,convert-linalg-to-loops | filecheck %s --check-prefix=LOOPS

// convert-ge-to-linalg on ge.pow: an inline exponent with one value in {1, 2, 3, 4, 0.5, -1}
// becomes multiplications, sqrt or 1/x of the base alone (the exponent is not read); any
// other exponent (another value, mixed values, a weight-table constant, a run-time tensor)
// stays math.powf. The second RUN line checks that convert-linalg-to-loops accepts them.

// LOOPS-NOT: {{linalg\.|tensor\.}}
// LOOPS: scf.for
// LOOPS-NOT: {{linalg\.|tensor\.}}

// CHECK-LABEL: func.func @small_powers()
// CHECK:       %square = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<2x3xf32>)
// CHECK-NEXT:  ^bb0(%[[X:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:    %[[S:.*]] = arith.mulf %[[X]], %[[X]] : f32
// CHECK-NEXT:    linalg.yield %[[S]] : f32
// CHECK:       %cube = linalg.generic {{.*}} ins(%x : tensor<2x3xf32>)
// CHECK-NEXT:  ^bb0(%[[X:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:    %[[S:.*]] = arith.mulf %[[X]], %[[X]] : f32
// CHECK-NEXT:    %[[C:.*]] = arith.mulf %[[S]], %[[X]] : f32
// CHECK-NEXT:    linalg.yield %[[C]] : f32
// CHECK:       %fourth = linalg.generic {{.*}} ins(%x : tensor<2x3xf32>)
// CHECK-NEXT:  ^bb0(%[[X:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:    %[[S:.*]] = arith.mulf %[[X]], %[[X]] : f32
// CHECK-NEXT:    %[[F:.*]] = arith.mulf %[[S]], %[[S]] : f32
// CHECK-NEXT:    linalg.yield %[[F]] : f32
// CHECK:       %root = linalg.generic {{.*}} ins(%x : tensor<2x3xf32>)
// CHECK:         math.sqrt
// CHECK:       %inverse = linalg.generic {{.*}} ins(%x : tensor<2x3xf32>)
// CHECK-NEXT:  ^bb0(%[[X:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:    %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    %[[R:.*]] = arith.divf %[[ONE]], %[[X]] : f32
// CHECK:       %same = linalg.generic {{.*}} ins(%x : tensor<2x3xf32>)
// CHECK-NEXT:  ^bb0(%[[X:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT:    linalg.yield %[[X]] : f32
// The exponent is broadcast over the base: the result has the exponent's larger shape.
// CHECK:       %wide = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], {{.*}} ins(%x : tensor<2x3xf32>) outs(%{{.*}} : tensor<4x2x3xf32>)
// CHECK:         arith.mulf
// CHECK-LABEL: func.func @general_powers()
// CHECK:       %other = linalg.generic
// CHECK:         math.powf
// CHECK:       %mixed = linalg.generic
// CHECK:         math.powf
// CHECK:       %stored = linalg.generic
// CHECK:         math.powf
// CHECK:       %runtime = linalg.generic
// CHECK:         math.powf
// CHECK-NOT:   linalg.generic

builtin.module {
  func.func @small_powers() -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<4x2x3xf32>) {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %two = ge.const "two" = dense<2.0> : tensor<f32>
    %three = ge.const "three" = dense<3.0> : tensor<1x1xf32>
    %four = ge.const "four" = dense<4.0> : tensor<f32>
    %half = ge.const "half" = dense<0.5> : tensor<3xf32>
    %m1 = ge.const "m1" = dense<-1.0> : tensor<f32>
    %one = ge.const "one" = dense<1.0> : tensor<f32>
    %twos = ge.const "twos" = dense<2.0> : tensor<4x1x1xf32>
    %square = ge.pow %x, %two : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %cube = ge.pow %x, %three : (tensor<2x3xf32>, tensor<1x1xf32>) -> tensor<2x3xf32>
    %fourth = ge.pow %x, %four : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %root = ge.pow %x, %half : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %inverse = ge.pow %x, %m1 : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %same = ge.pow %x, %one : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %wide = ge.pow %x, %twos : (tensor<2x3xf32>, tensor<4x1x1xf32>) -> tensor<4x2x3xf32>
    func.return %square, %cube, %fourth, %root, %inverse, %same, %wide : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<4x2x3xf32>
  }

  func.func @general_powers() -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %y = ge.data "y" index 1 : tensor<2x3xf32>
    %e = ge.const "e" = dense<2.5> : tensor<f32>
    %m = ge.const "m" = dense<[2.0, 3.0, 2.0]> : tensor<3xf32>
    %w = ge.const "w" : tensor<f32>
    %other = ge.pow %x, %e : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %mixed = ge.pow %x, %m : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %stored = ge.pow %x, %w : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %runtime = ge.pow %x, %y : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    func.return %other, %mixed, %stored, %runtime : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
  }
}
