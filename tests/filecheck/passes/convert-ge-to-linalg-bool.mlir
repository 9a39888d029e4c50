// RUN: wrc-opt %s -p convert-ge-to-linalg | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize,convert-linalg-to-loops | filecheck %s --check-prefix=LOOPS

// convert-ge-to-linalg on the bool (i1) ops (docs/internals.md, level 2): each is one
// broadcasting generic into an i1 buffer; with them sign and the integer remainders. The
// second RUN line checks that xDSL's convert-linalg-to-loops accepts every generic.

// LOOPS-NOT: {{linalg\.|tensor\.}}
// LOOPS: scf.for
// LOOPS-NOT: {{linalg\.|tensor\.}}

// Comparisons: ordered cmpf predicates (false on NaN, as ONNX), signed cmpi for integers and
// i1; operands broadcast through their maps (a size-1 dim read at 0, a missing one absent).
// CHECK-LABEL: func.func @compare()
// CHECK:       tensor.empty() : tensor<2x3xi1>
// CHECK-NEXT:  %eq = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x, %y : tensor<2x3xf32>, tensor<3xf32>) outs(%{{.*}} : tensor<2x3xi1>)
// CHECK-NEXT:  ^bb0(%{{.*}}: f32, %{{.*}}: f32, %{{.*}}: i1):
// CHECK-NEXT:    arith.cmpf oeq
// CHECK-NEXT:    linalg.yield {{.*}} : i1
// CHECK:       %lt = linalg.generic
// CHECK:         arith.cmpf olt
// CHECK:       %le = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, 0)>, affine_map<(d0, d1) -> (d0, d1)>]
// CHECK:         arith.cmpi sle, {{.*}} : i64
// CHECK:       %gt = linalg.generic
// CHECK:         arith.cmpi sgt
// CHECK:       %ge = linalg.generic
// CHECK:         arith.cmpf oge
// CHECK:       %ieq = linalg.generic
// CHECK:         arith.cmpi eq, {{.*}} : i64
// CHECK:       %beq = linalg.generic
// CHECK:         arith.cmpi eq, {{.*}} : i1

// Logic: andi/ori/xori on i1; not = xori with true; reduce_max of bools is an ori reduction
// into false (as a signed i1, true is -1, so maxsi would prefer false).
// CHECK-LABEL: func.func @logic()
// CHECK:       %and = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, 0)>, affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>]
// CHECK:         arith.andi {{.*}} : i1
// CHECK:       %or = linalg.generic
// CHECK:         arith.ori {{.*}} : i1
// CHECK:       %xor = linalg.generic
// CHECK:         arith.xori {{.*}} : i1
// CHECK:       %not = linalg.generic
// CHECK-NEXT:  ^bb0(%[[A:.*]]: i1, %{{.*}}: i1):
// CHECK-NEXT:    %[[T:.*]] = arith.constant true
// CHECK-NEXT:    arith.xori %[[A]], %[[T]] : i1
// CHECK:       %[[F:.*]] = arith.constant false
// CHECK-NEXT:  %[[B:.*]] = linalg.fill ins(%[[F]] : i1) outs(%{{.*}} : tensor<2xi1>) -> tensor<2xi1>
// CHECK-NEXT:  %any = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%n : tensor<2x3xi1>) outs(%[[B]] : tensor<2xi1>)
// CHECK-NEXT:  ^bb0(%[[X:.*]]: i1, %[[ACC:.*]]: i1):
// CHECK-NEXT:    arith.ori %[[ACC]], %[[X]] : i1

// is_nan: x unordered with itself; is_inf: |x| == inf (the f16 +inf bits).
// CHECK-LABEL: func.func @float_tests()
// CHECK:       %nan = linalg.generic
// CHECK:         arith.cmpf uno, %[[X:.*]], %[[X]] : f16
// CHECK:       %inf = linalg.generic
// CHECK:         %[[ABS:.*]] = math.absf
// CHECK-NEXT:    %[[INF:.*]] = arith.constant 0x7c00 : f16
// CHECK-NEXT:    arith.cmpf oeq, %[[ABS]], %[[INF]] : f16

// sign: x > 0 ? 1 : (x < 0 ? -1 : x) (0 and NaN stay); fmod is remsi (the sign of x);
// floor_mod adds y to a non-zero remsi whose sign differs from y's.
// CHECK-LABEL: func.func @sign_mod()
// CHECK:       %s = linalg.generic
// CHECK:         %[[P:.*]] = arith.cmpf ogt, %[[X:.*]], %{{.*}} : f32
// CHECK-NEXT:    %[[N:.*]] = arith.cmpf olt, %[[X]], %{{.*}} : f32
// CHECK-NEXT:    %[[M1:.*]] = arith.constant -1.000000e+00 : f32
// CHECK-NEXT:    %[[IN:.*]] = arith.select %[[N]], %[[M1]], %[[X]] : f32
// CHECK-NEXT:    %[[P1:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    arith.select %[[P]], %[[P1]], %[[IN]] : f32
// CHECK:       %si = linalg.generic
// CHECK:         arith.cmpi sgt
// CHECK:       %m = linalg.generic
// CHECK:         %[[R:.*]] = arith.remsi %[[A:.*]], %[[B:.*]] : i64
// CHECK:         %[[RN:.*]] = arith.cmpi slt, %[[R]], %{{.*}} : i64
// CHECK-NEXT:    %[[BN:.*]] = arith.cmpi slt, %[[B]], %{{.*}} : i64
// CHECK-NEXT:    %[[FLIP:.*]] = arith.xori %[[RN]], %[[BN]] : i1
// CHECK-NEXT:    %[[NZ:.*]] = arith.cmpi ne, %[[R]], %{{.*}} : i64
// CHECK-NEXT:    %[[FIX:.*]] = arith.andi %[[NZ]], %[[FLIP]] : i1
// CHECK-NEXT:    %[[SUM:.*]] = arith.addi %[[R]], %[[B]] : i64
// CHECK-NEXT:    arith.select %[[FIX]], %[[SUM]], %[[R]] : i64
// CHECK:       %f = linalg.generic
// CHECK-NEXT:  ^bb0
// CHECK-NEXT:    arith.remsi
// CHECK-NEXT:    linalg.yield

builtin.module {
  func.func @compare() -> (tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x1xi1>) {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %y = ge.data "y" index 1 : tensor<3xf32>
    %i = ge.data "i" index 2 : tensor<2x3xi64>
    %j = ge.data "j" index 3 : tensor<2x1xi64>
    %m = ge.data "m" index 4 : tensor<2x1xi1>
    %eq = ge.equal %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
    %lt = ge.less %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
    %le = ge.less_equal %i, %j : (tensor<2x3xi64>, tensor<2x1xi64>) -> tensor<2x3xi1>
    %gt = ge.greater %i, %j : (tensor<2x3xi64>, tensor<2x1xi64>) -> tensor<2x3xi1>
    %ge = ge.greater_equal %x, %y : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xi1>
    %ieq = ge.equal %i, %j : (tensor<2x3xi64>, tensor<2x1xi64>) -> tensor<2x3xi1>
    %beq = ge.equal %m, %m : (tensor<2x1xi1>, tensor<2x1xi1>) -> tensor<2x1xi1>
    func.return %eq, %lt, %le, %gt, %ge, %ieq, %beq : tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x1xi1>
  }
  func.func @logic() -> (tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x1xi1>, tensor<2xi1>) {
    %m = ge.data "m" index 0 : tensor<2x1xi1>
    %n = ge.data "n" index 1 : tensor<2x3xi1>
    %and = ge.logical_and %m, %n : (tensor<2x1xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
    %or = ge.logical_or %m, %n : (tensor<2x1xi1>, tensor<2x3xi1>) -> tensor<2x3xi1>
    %xor = ge.logical_xor %n, %m : (tensor<2x3xi1>, tensor<2x1xi1>) -> tensor<2x3xi1>
    %not = ge.logical_not %m : tensor<2x1xi1>
    %any = ge.reduce_max %n {axes = array<i64: 1>, keepdims = 0 : i64} : tensor<2x3xi1> -> tensor<2xi1>
    func.return %and, %or, %xor, %not, %any : tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x3xi1>, tensor<2x1xi1>, tensor<2xi1>
  }
  func.func @float_tests() -> (tensor<4xi1>, tensor<4xi1>) {
    %x = ge.data "x" index 0 : tensor<4xf16>
    %nan = ge.is_nan %x : tensor<4xf16> -> tensor<4xi1>
    %inf = ge.is_inf %x : tensor<4xf16> -> tensor<4xi1>
    func.return %nan, %inf : tensor<4xi1>, tensor<4xi1>
  }
  func.func @sign_mod() -> (tensor<2x3xf32>, tensor<3xi32>, tensor<2x3xi64>, tensor<2x3xi64>) {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %k = ge.data "k" index 1 : tensor<3xi32>
    %i = ge.data "i" index 2 : tensor<2x3xi64>
    %j = ge.data "j" index 3 : tensor<3xi64>
    %s = ge.sign %x : tensor<2x3xf32>
    %si = ge.sign %k : tensor<3xi32>
    %m = ge.floor_mod %i, %j : (tensor<2x3xi64>, tensor<3xi64>) -> tensor<2x3xi64>
    %f = ge.fmod %i, %j : (tensor<2x3xi64>, tensor<3xi64>) -> tensor<2x3xi64>
    func.return %s, %si, %m, %f : tensor<2x3xf32>, tensor<3xi32>, tensor<2x3xi64>, tensor<2x3xi64>
  }
}
