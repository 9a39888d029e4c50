// RUN: wrc-opt %s -p convert-ge-to-linalg | filecheck %s
// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize,convert-linalg-to-loops | filecheck %s --check-prefix=LOOPS

// convert-ge-to-linalg on the ops added for ONNX models (docs/internals.md, level 2). The
// second RUN line checks that xDSL's convert-linalg-to-loops accepts every generic.

// LOOPS-NOT: {{linalg\.|tensor\.}}
// LOOPS: scf.for
// LOOPS-NOT: {{linalg\.|tensor\.}}

// concat: copies into a buffer one cell longer on the axis (offsets 1 and 1 + 3), read back at d1 + 1.
// CHECK-LABEL: func.func @concat()
// CHECK:       tensor.empty() : tensor<2x6xf32>
// CHECK-NEXT:  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, (d1 + 1))>]
// CHECK:       linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, (d1 + 4))>]
// CHECK:       %z = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, (d1 + 1))>, affine_map<(d0, d1) -> (d0, d1)>]

// slice: a dim read from 0 by 1 but shorter than the input is padded with one low cell first.
// CHECK-LABEL: func.func @slice()
// CHECK:       linalg.fill {{.*}} -> tensor<5x5xf32>
// CHECK:       affine_map<(d0, d1) -> ((d0 + 1), d1)>
// CHECK:       %z = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> ((d0 + 1), ((d1 * 2) + 1))>, affine_map<(d0, d1) -> (d0, d1)>]

// gather: a one-hot reduction over the gathered axis (loop d3), negative indices shifted by 10,
// tagged `library_call = "wrc_gather"` with its axis (the NumPy JIT takes rows instead).
// CHECK-LABEL: func.func @gather()
// CHECK:       %z = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"], library_call = "wrc_gather"} {{.*}} attrs =  {wrc.gather_axis = 0 : i64}
// CHECK:         linalg.index 3 : index
// CHECK-NEXT:    arith.index_cast {{.*}} : index to i64
// CHECK:         arith.cmpi slt
// CHECK:         arith.constant 10 : i64
// CHECK:         arith.cmpi eq
// CHECK:         arith.select
// CHECK-NEXT:    arith.addf

// gather by constant rows `start + step * i` in range: a copy generic reading them, as a slice
// (one index: the gathered dim is gone; a negative index counted from the end); rows that are
// no such progression, or a bare `d1` over fewer rows than the data has, keep the one-hot form.
// CHECK-LABEL: func.func @gather_constant_rows()
// CHECK:       %y = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0, 2)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
// CHECK:       %z = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, ((d1 * 3) + 1))>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
// CHECK:       %w = linalg.generic {{.*}} library_call = "wrc_gather"
// CHECK:       %v = linalg.generic {{.*}} library_call = "wrc_gather"

// CHECK-LABEL: func.func @cast_where_erf()
// CHECK:       arith.fptosi {{.*}} : f32 to i32
// CHECK:       math.erf
// CHECK:       arith.select {{.*}} : f32

// integer reduce_max: filled with the lowest i32, combined with maxsi; expand: a broadcast copy.
// CHECK-LABEL: func.func @reduce_max_expand()
// CHECK:       arith.constant -2147483648 : i32
// CHECK:       arith.maxsi
// CHECK:       %e = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1)>, affine_map<(d0, d1) -> (d0, d1)>]

builtin.module {
  func.func @concat() -> tensor<2x5xf32> {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %y = ge.data "y" index 1 : tensor<2x2xf32>
    %z = ge.concat %x, %y {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x2xf32>) -> tensor<2x5xf32>
    func.return %z : tensor<2x5xf32>
  }
  func.func @slice() -> tensor<2x2xf32> {
    %x = ge.data "x" index 0 : tensor<4x5xf32>
    %z = ge.slice %x {starts = array<i64: 0, 1>, steps = array<i64: 1, 2>} : tensor<4x5xf32> -> tensor<2x2xf32>
    func.return %z : tensor<2x2xf32>
  }
  func.func @gather() -> tensor<2x3x4xf32> {
    %d = ge.data "d" index 0 : tensor<10x4xf32>
    %i = ge.data "i" index 1 : tensor<2x3xi64>
    %z = ge.gather %d, %i {axis = 0 : i64} : (tensor<10x4xf32>, tensor<2x3xi64>) -> tensor<2x3x4xf32>
    func.return %z : tensor<2x3x4xf32>
  }
  func.func @gather_constant_rows() -> (tensor<3xf32>, tensor<3x2xf32>, tensor<3x2xf32>, tensor<3x2xf32>) {
    %d = ge.data "d" index 0 : tensor<3x5xf32>
    %i = ge.const "i" = dense<-3> : tensor<i64>
    %j = ge.const "j" = dense<[1, 4]> : tensor<2xi64>
    %k = ge.const "k" = dense<[4, 1]> : tensor<2xi64>
    %m = ge.const "m" = dense<[0, 1]> : tensor<2xi64>
    %y = ge.gather %d, %i {axis = 1 : i64} : (tensor<3x5xf32>, tensor<i64>) -> tensor<3xf32>
    %z = ge.gather %d, %j {axis = 1 : i64} : (tensor<3x5xf32>, tensor<2xi64>) -> tensor<3x2xf32>
    %w = ge.gather %d, %k {axis = 1 : i64} : (tensor<3x5xf32>, tensor<2xi64>) -> tensor<3x2xf32>
    %v = ge.gather %d, %m {axis = 1 : i64} : (tensor<3x5xf32>, tensor<2xi64>) -> tensor<3x2xf32>
    func.return %y, %z, %w, %v : tensor<3xf32>, tensor<3x2xf32>, tensor<3x2xf32>, tensor<3x2xf32>
  }
  func.func @cast_where_erf() -> (tensor<3xi32>, tensor<3xf32>) {
    %x = ge.data "x" index 0 : tensor<3xf32>
    %c = ge.data "c" index 1 : tensor<3xi1>
    %k = ge.cast %x : tensor<3xf32> -> tensor<3xi32>
    %e = ge.erf %x : tensor<3xf32>
    %w = ge.where %c, %e, %x : (tensor<3xi1>, tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
    func.return %k, %w : tensor<3xi32>, tensor<3xf32>
  }
  func.func @reduce_max_expand() -> (tensor<2x1xi32>, tensor<2x3xf32>) {
    %x = ge.data "x" index 0 : tensor<2x3xi32>
    %y = ge.data "y" index 1 : tensor<3xf32>
    %m = ge.reduce_max %x {axes = array<i64: 1>, keepdims = 1 : i64} : tensor<2x3xi32> -> tensor<2x1xi32>
    %e = ge.expand %y : tensor<3xf32> -> tensor<2x3xf32>
    func.return %m, %e : tensor<2x1xi32>, tensor<2x3xf32>
  }
}
