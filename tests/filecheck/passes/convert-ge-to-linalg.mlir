// RUN: wrc-opt %s --split-input-file --verify-diagnostics -p convert-ge-to-linalg | filecheck %s
// RUN: wrc-opt %s --split-input-file --verify-diagnostics -p convert-ge-to-linalg,ge-bufferize,convert-linalg-to-loops | filecheck %s --check-prefix=LOOPS
// RUN: not wrc-opt %s --split-input-file -p convert-ge-to-linalg 2>&1 | filecheck %s --check-prefix=ERR

// convert-ge-to-linalg: every ge compute op becomes tensor.empty + linalg.fill + linalg.generic
// on tensors (docs/internals.md, level 2); graph structure ops are kept.
// The second RUN line checks that xDSL's convert-linalg-to-loops accepts every generic after
// ge-bufferize (no linalg op is left). The third: the first error is a diagnostic, no traceback.

// ERR-NOT: Traceback
// ERR: wrc-opt: error: ge.matmul: dynamic dimension in tensor<?x3xf32> not supported; give the graph inputs static shapes

// LOOPS-NOT: {{linalg\.|tensor\.}}
// LOOPS: scf.for
// LOOPS-NOT: {{linalg\.|tensor\.}}

builtin.module {
  // NumPy broadcasting: missing leading dims are dropped from the map, size-1 dims read at 0.
  // CHECK-LABEL: func.func @add_broadcast()
  // CHECK:         %[[E:.*]] = tensor.empty() : tensor<2x3x4xf32>
  // CHECK-NEXT:    %z = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, 0, d2)>, affine_map<(d0, d1, d2) -> (d1, 0)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x, %y : tensor<2x1x4xf32>, tensor<3x1xf32>) outs(%[[E]] : tensor<2x3x4xf32>) {
  // CHECK-NEXT:    ^bb0(%[[A:.*]]: f32, %[[B:.*]]: f32, %{{.*}}: f32):
  // CHECK-NEXT:      %[[S:.*]] = arith.addf %[[A]], %[[B]] : f32
  // CHECK-NEXT:      linalg.yield %[[S]] : f32
  // CHECK-NEXT:    } -> tensor<2x3x4xf32>
  // CHECK-NEXT:    func.return %z : tensor<2x3x4xf32>
  func.func @add_broadcast() -> tensor<2x3x4xf32> {
    %x = ge.data "x" index 0 : tensor<2x1x4xf32>
    %y = ge.data "y" index 1 : tensor<3x1xf32>
    %z = ge.add %x, %y : (tensor<2x1x4xf32>, tensor<3x1xf32>) -> tensor<2x3x4xf32>
    func.return %z : tensor<2x3x4xf32>
  }

  // A rank-0 operand has an empty map; integer tensors use the integer arith ops.
  // CHECK-LABEL: func.func @binary_ops()
  // CHECK:         %s = ge.const "s" = dense<2.000000e+00> : tensor<f32>
  // CHECK:         %a = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]} ins(%x, %s : tensor<4xf32>, tensor<f32>)
  // CHECK:           arith.subf
  // CHECK:         %b = linalg.generic
  // CHECK:           arith.mulf
  // CHECK:         %c = linalg.generic
  // CHECK:           arith.divf
  // CHECK:         %d = linalg.generic
  // CHECK:           arith.addi {{.*}} : i32
  // CHECK:         %e = linalg.generic
  // CHECK:           arith.divsi {{.*}} : i32
  func.func @binary_ops() -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xi32>, tensor<4xi32>) {
    %x = ge.data "x" index 0 : tensor<4xf32>
    %s = ge.const "s" = dense<2.0> : tensor<f32>
    %a = ge.sub %x, %s : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
    %b = ge.mul %x, %x : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    %c = ge.div %x, %s : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
    %i = ge.data "i" index 1 : tensor<4xi32>
    %d = ge.add %i, %i : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
    %e = ge.div %i, %i : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
    func.return %a, %b, %c, %d, %e : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xi32>, tensor<4xi32>
  }

  // relu = maximumf(x, 0); sigmoid = 1 / (1 + exp(-x)); f16 and f64 work the same way.
  // CHECK-LABEL: func.func @unary_ops()
  // CHECK:         %r = linalg.generic
  // CHECK-NEXT:    ^bb0(%[[X:.*]]: f32, %{{.*}}: f32):
  // CHECK-NEXT:      %[[Z:.*]] = arith.constant 0.000000e+00 : f32
  // CHECK-NEXT:      %[[M:.*]] = arith.maximumf %[[X]], %[[Z]] : f32
  // CHECK-NEXT:      linalg.yield %[[M]] : f32
  // CHECK:         %s = linalg.generic
  // CHECK-NEXT:    ^bb0(%[[X:.*]]: f32, %{{.*}}: f32):
  // CHECK-NEXT:      %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
  // CHECK-NEXT:      %[[N:.*]] = arith.negf %[[X]] : f32
  // CHECK-NEXT:      %[[EX:.*]] = math.exp %[[N]] : f32
  // CHECK-NEXT:      %[[D:.*]] = arith.addf %[[ONE]], %[[EX]] : f32
  // CHECK-NEXT:      %[[Q:.*]] = arith.divf %[[ONE]], %[[D]] : f32
  // CHECK-NEXT:      linalg.yield %[[Q]] : f32
  // CHECK:         %t = linalg.generic {{.*}} ins(%h : tensor<2x3xf16>)
  // CHECK:           math.tanh %{{.*}} : f16
  // CHECK:         %e = linalg.generic {{.*}} ins(%d : tensor<2x3xf64>)
  // CHECK:           math.exp %{{.*}} : f64
  func.func @unary_ops() -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf16>, tensor<2x3xf64>) {
    %x = ge.data "x" index 0 : tensor<2x3xf32>
    %r = ge.relu %x : tensor<2x3xf32>
    %s = ge.sigmoid %x : tensor<2x3xf32>
    %h = ge.data "h" index 1 : tensor<2x3xf16>
    %t = ge.tanh %h : tensor<2x3xf16>
    %d = ge.data "d" index 2 : tensor<2x3xf64>
    %e = ge.exp %d : tensor<2x3xf64>
    func.return %r, %s, %t, %e : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf16>, tensor<2x3xf64>
  }

  // Numerically stable softmax: max (init -inf), exp(x - max), sum (init 0), divide.
  // CHECK-LABEL: func.func @softmax()
  // CHECK:         %[[MI:.*]] = tensor.empty() : tensor<2xf32>
  // CHECK-NEXT:    %[[NINF:.*]] = arith.constant 0xff800000 : f32
  // CHECK-NEXT:    %[[MF:.*]] = linalg.fill ins(%[[NINF]] : f32) outs(%[[MI]] : tensor<2xf32>) -> tensor<2xf32>
  // CHECK-NEXT:    %[[MAX:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<2x5xf32>) outs(%[[MF]] : tensor<2xf32>)
  // CHECK:           arith.maximumf
  // CHECK:         %[[EXP:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%x, %[[MAX]] : tensor<2x5xf32>, tensor<2xf32>)
  // CHECK:           arith.subf
  // CHECK-NEXT:      math.exp
  // CHECK:         %[[Z:.*]] = arith.constant 0.000000e+00 : f32
  // CHECK-NEXT:    %[[SF:.*]] = linalg.fill ins(%[[Z]] : f32)
  // CHECK-NEXT:    %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[EXP]] : tensor<2x5xf32>) outs(%[[SF]] : tensor<2xf32>)
  // CHECK:           arith.addf
  // CHECK:         %y = linalg.generic {{.*}} ins(%[[EXP]], %[[SUM]] : tensor<2x5xf32>, tensor<2xf32>)
  // CHECK:           arith.divf
  func.func @softmax() -> tensor<2x5xf32> {
    %x = ge.data "x" index 0 : tensor<2x5xf32>
    %y = ge.softmax %x {axis = -1 : i64} : tensor<2x5xf32>
    func.return %y : tensor<2x5xf32>
  }

  // Multiply-accumulate over a zero-filled buffer; batched matmul keeps the batch loop parallel.
  // CHECK-LABEL: func.func @matmul()
  // CHECK:         %w = ge.const "w" : tensor<16x10xf32>
  // CHECK-NEXT:    %[[E:.*]] = tensor.empty() : tensor<8x10xf32>
  // CHECK-NEXT:    %[[Z:.*]] = arith.constant 0.000000e+00 : f32
  // CHECK-NEXT:    %[[F:.*]] = linalg.fill ins(%[[Z]] : f32) outs(%[[E]] : tensor<8x10xf32>) -> tensor<8x10xf32>
  // CHECK-NEXT:    %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%a, %w : tensor<8x16xf32>, tensor<16x10xf32>) outs(%[[F]] : tensor<8x10xf32>) {
  // CHECK-NEXT:    ^bb0(%[[L:.*]]: f32, %[[R:.*]]: f32, %[[ACC:.*]]: f32):
  // CHECK-NEXT:      %[[P:.*]] = arith.mulf %[[L]], %[[R]] : f32
  // CHECK-NEXT:      %[[S:.*]] = arith.addf %[[ACC]], %[[P]] : f32
  // CHECK-NEXT:      linalg.yield %[[S]] : f32
  // CHECK:         %by = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
  func.func @matmul() -> (tensor<8x10xf32>, tensor<3x8x10xf32>) {
    %a = ge.data "a" index 0 : tensor<8x16xf32>
    %w = ge.const "w" : tensor<16x10xf32>
    %y = ge.matmul %a, %w : (tensor<8x16xf32>, tensor<16x10xf32>) -> tensor<8x10xf32>
    %ba = ge.data "ba" index 1 : tensor<3x8x16xf32>
    %bb = ge.data "bb" index 2 : tensor<3x16x10xf32>
    %by = ge.matmul %ba, %bb : (tensor<3x8x16xf32>, tensor<3x16x10xf32>) -> tensor<3x8x10xf32>
    func.return %y, %by : tensor<8x10xf32>, tensor<3x8x10xf32>
  }

  // A transpose of the last two dims that only feeds matmuls is folded into their maps
  // (rhs read as (n, k), lhs as (k, m)): no copy; another transpose is a copy generic.
  // CHECK-LABEL: func.func @matmul_transposed()
  // CHECK-NOT:     ge.transpose
  // CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], {{.*}} ins(%x, %tw : tensor<2x4xf32>, tensor<3x4xf32>)
  // CHECK:         %y2 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], {{.*}} ins(%x, %tw : tensor<2x4xf32>, tensor<3x4xf32>)
  // CHECK:         %y3 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d2, d0)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], {{.*}} ins(%tv, %tz : tensor<3x2xf32>, tensor<3x3xf32>)
  // CHECK:         %ut = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d0, d1)>]
  func.func @matmul_transposed() -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %tw = ge.const "tw" = dense<1.0> : tensor<3x4xf32>
    %wt = ge.transpose %tw {perm = array<i64: 1, 0>} : tensor<3x4xf32> -> tensor<4x3xf32>
    %y = ge.matmul %x, %wt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %y2 = ge.matmul %x, %wt : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %tv = ge.const "tv" = dense<2.0> : tensor<3x2xf32>
    %vt = ge.transpose %tv {perm = array<i64: 1, 0>} : tensor<3x2xf32> -> tensor<2x3xf32>
    %tz = ge.const "tz" = dense<3.0> : tensor<3x3xf32>
    %y3 = ge.matmul %vt, %tz : (tensor<2x3xf32>, tensor<3x3xf32>) -> tensor<2x3xf32>
    %ut = ge.transpose %tv {perm = array<i64: 1, 0>} : tensor<3x2xf32> -> tensor<2x3xf32>
    func.return %y, %y2, %y3, %ut : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
  }

  // Collapse to rank 1 then expand, skipping identity steps; a 0-d source is broadcast by a
  // copy generic (xDSL cannot expand a 0-d tensor); collapsing to 0-d has no reassociation.
  // CHECK-LABEL: func.func @reshape()
  // CHECK:         %[[C:.*]] = tensor.collapse_shape %x {{\[}}[0 : i64, 1 : i64, 2 : i64]] : tensor<2x3x4xf32> into tensor<24xf32>
  // CHECK-NEXT:    %a = tensor.expand_shape %[[C]] {{\[}}[0 : i64, 1 : i64]] output_shape [6, 4] : tensor<24xf32> into tensor<6x4xf32>
  // CHECK-NEXT:    %b = tensor.collapse_shape %x {{\[}}[0 : i64, 1 : i64, 2 : i64]] : tensor<2x3x4xf32> into tensor<24xf32>
  // CHECK-NEXT:    %c = tensor.expand_shape %b {{\[}}[0 : i64, 1 : i64, 2 : i64]] output_shape [2, 3, 4] : tensor<24xf32> into tensor<2x3x4xf32>
  // CHECK:         %d = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> ()>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%s : tensor<f32>)
  // CHECK:         %e = tensor.collapse_shape %d [] : tensor<1x1xf32> into tensor<f32>
  // CHECK-NEXT:    func.return %a, %b, %c, %d, %e
  func.func @reshape() -> (tensor<6x4xf32>, tensor<24xf32>, tensor<2x3x4xf32>, tensor<1x1xf32>, tensor<f32>) {
    %x = ge.data "x" index 0 : tensor<2x3x4xf32>
    %a = ge.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>
    %b = ge.reshape %x : tensor<2x3x4xf32> -> tensor<24xf32>
    %c = ge.reshape %b : tensor<24xf32> -> tensor<2x3x4xf32>
    %s = ge.data "s" index 1 : tensor<f32>
    %d = ge.reshape %s : tensor<f32> -> tensor<1x1xf32>
    %e = ge.reshape %d : tensor<1x1xf32> -> tensor<f32>
    func.return %a, %b, %c, %d, %e : tensor<6x4xf32>, tensor<24xf32>, tensor<2x3x4xf32>, tensor<1x1xf32>, tensor<f32>
  }

  // Loops over the output; output dim i reads input dim perm[i].
  // CHECK-LABEL: func.func @transpose()
  // CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d1, d2, d0)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : tensor<2x3x4xf32>) outs(%{{.*}} : tensor<4x2x3xf32>) {
  // CHECK-NEXT:    ^bb0(%[[V:.*]]: f32, %{{.*}}: f32):
  // CHECK-NEXT:      linalg.yield %[[V]] : f32
  func.func @transpose() -> tensor<4x2x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x3x4xf32>
    %y = ge.transpose %x {perm = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
    func.return %y : tensor<4x2x3xf32>
  }

  // Padding: a zero-filled buffer and a copy generic whose output map has the offsets; then
  // loops (n, f, oh, ow, c, kh, kw) reading the input at (n, c, oh * 2 + kh, ow * 2 + kw).
  // CHECK-LABEL: func.func @conv2d()
  // CHECK:         %[[PE:.*]] = tensor.empty() : tensor<1x3x10x10xf32>
  // CHECK-NEXT:    %[[Z:.*]] = arith.constant 0.000000e+00 : f32
  // CHECK-NEXT:    %[[PF:.*]] = linalg.fill ins(%[[Z]] : f32) outs(%[[PE]] : tensor<1x3x10x10xf32>) -> tensor<1x3x10x10xf32>
  // CHECK-NEXT:    %[[P:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, (d2 + 1), (d3 + 1))>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%x : tensor<1x3x8x8xf32>) outs(%[[PF]] : tensor<1x3x10x10xf32>)
  // CHECK:         %[[OF:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<1x8x4x4xf32>)
  // CHECK-NEXT:    %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d4, ((d2 * 2) + d5), ((d3 * 2) + d6))>, affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d1, d4, d5, d6)>, affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%[[P]], %w : tensor<1x3x10x10xf32>, tensor<8x3x3x3xf32>) outs(%[[OF]] : tensor<1x8x4x4xf32>)
  // CHECK:           arith.mulf
  // CHECK-NEXT:      arith.addf
  func.func @conv2d() -> tensor<1x8x4x4xf32> {
    %x = ge.data "x" index 0 : tensor<1x3x8x8xf32>
    %w = ge.const "cw" : tensor<8x3x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<8x3x3x3xf32>) -> tensor<1x8x4x4xf32>
    func.return %y : tensor<1x8x4x4xf32>
  }

  // Groups: channels split by expand_shape so that every loop is a plain dim of some operand;
  // loops (n, g, fg, oh, ow, c, kh, kw). The width is padded only on the right, so the
  // padded buffer gets one extra left column and readers add 1 (W: 5 + 1 + 2 = 8).
  // CHECK-LABEL: func.func @conv2d_groups()
  // CHECK:         %[[P:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, (d2 + 1), (d3 + 1))>], {{.*}} outs(%{{.*}} : tensor<2x4x7x8xf32>)
  // CHECK:         %[[XG:.*]] = tensor.expand_shape %[[P]] {{\[}}[0 : i64], [1 : i64, 2 : i64], [3 : i64], [4 : i64]] output_shape [2, 2, 2, 7, 8] : tensor<2x4x7x8xf32> into tensor<2x2x2x7x8xf32>
  // CHECK-NEXT:    %[[WG:.*]] = tensor.expand_shape %w {{\[}}[0 : i64, 1 : i64], [2 : i64], [3 : i64], [4 : i64]] output_shape [2, 2, 2, 3, 3] : tensor<4x2x3x3xf32> into tensor<2x2x2x3x3xf32>
  // CHECK:         %[[OF:.*]] = linalg.fill {{.*}} outs(%{{.*}} : tensor<2x2x2x3x5xf32>)
  // CHECK-NEXT:    %[[G:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5, d6, d7) -> (d0, d1, d5, ((d3 * 2) + d6), ((d4 + d7) + 1))>, affine_map<(d0, d1, d2, d3, d4, d5, d6, d7) -> (d1, d2, d5, d6, d7)>, affine_map<(d0, d1, d2, d3, d4, d5, d6, d7) -> (d0, d1, d2, d3, d4)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction", "reduction", "reduction"]} ins(%[[XG]], %[[WG]] : tensor<2x2x2x7x8xf32>, tensor<2x2x2x3x3xf32>) outs(%[[OF]] : tensor<2x2x2x3x5xf32>)
  // CHECK:         %y = tensor.collapse_shape %[[G]] {{\[}}[0 : i64], [1 : i64, 2 : i64], [3 : i64], [4 : i64]] : tensor<2x2x2x3x5xf32> into tensor<2x4x3x5xf32>
  func.func @conv2d_groups() -> tensor<2x4x3x5xf32> {
    %x = ge.data "x" index 0 : tensor<2x4x5x5xf32>
    %w = ge.data "w" index 1 : tensor<4x2x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 2, 1>, pads = array<i64: 1, 0, 1, 2>, dilations = array<i64: 1, 1>, groups = 2 : i64} : (tensor<2x4x5x5xf32>, tensor<4x2x3x3xf32>) -> tensor<2x4x3x5xf32>
    func.return %y : tensor<2x4x3x5xf32>
  }

  // Dilations multiply the kernel loops; no padding means no copy.
  // CHECK-LABEL: func.func @conv2d_dilated()
  // CHECK-NOT:     tensor<1x2x9x9xf32>
  // CHECK:         %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5, d6) -> (d0, d4, (d2 + (d5 * 2)), (d3 + (d6 * 2)))>, {{.*}} ins(%x, %w : tensor<1x2x7x7xf32>, tensor<2x2x3x3xf32>)
  func.func @conv2d_dilated() -> tensor<1x2x3x3xf32> {
    %x = ge.data "x" index 0 : tensor<1x2x7x7xf32>
    %w = ge.data "w" index 1 : tensor<2x2x3x3xf32>
    %y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 2, 2>, groups = 1 : i64} : (tensor<1x2x7x7xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    func.return %y : tensor<1x2x3x3xf32>
  }

  // Pad with -inf, then a maximumf window reduction into a -inf-filled buffer. The window
  // loops get their range from an unread kernel-shaped tensor.empty input.
  // CHECK-LABEL: func.func @max_pool2d()
  // CHECK:         %[[NINF:.*]] = arith.constant 0xff800000 : f32
  // CHECK-NEXT:    %[[PF:.*]] = linalg.fill ins(%[[NINF]] : f32) outs(%{{.*}} : tensor<1x2x7x7xf32>)
  // CHECK-NEXT:    %[[P:.*]] = linalg.generic {{.*}} ins(%x : tensor<1x2x5x5xf32>) outs(%[[PF]] : tensor<1x2x7x7xf32>)
  // CHECK:         %[[WIN:.*]] = tensor.empty() : tensor<3x3xf32>
  // CHECK-NEXT:    %[[OE:.*]] = tensor.empty() : tensor<1x2x3x3xf32>
  // CHECK-NEXT:    %[[NINF2:.*]] = arith.constant 0xff800000 : f32
  // CHECK-NEXT:    %[[OF:.*]] = linalg.fill ins(%[[NINF2]] : f32) outs(%[[OE]] : tensor<1x2x3x3xf32>)
  // CHECK-NEXT:    %y = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, ((d2 * 2) + d4), ((d3 * 2) + d5))>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d4, d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%[[P]], %[[WIN]] : tensor<1x2x7x7xf32>, tensor<3x3xf32>) outs(%[[OF]] : tensor<1x2x3x3xf32>) {
  // CHECK-NEXT:    ^bb0(%[[V:.*]]: f32, %{{.*}}: f32, %[[ACC:.*]]: f32):
  // CHECK-NEXT:      %[[M:.*]] = arith.maximumf %[[ACC]], %[[V]] : f32
  // CHECK-NEXT:      linalg.yield %[[M]] : f32
  func.func @max_pool2d() -> tensor<1x2x3x3xf32> {
    %x = ge.data "x" index 0 : tensor<1x2x5x5xf32>
    %y = ge.max_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>} : tensor<1x2x5x5xf32> -> tensor<1x2x3x3xf32>
    func.return %y : tensor<1x2x3x3xf32>
  }

  // Window sums divided by the cell count: the kernel size without padding or with
  // count_include_pad; otherwise per-position counts, window sums of a zero-padded tensor of
  // ones (3x3, broadcast over N and C).
  // CHECK-LABEL: func.func @avg_pool2d()
  // CHECK:         %a = linalg.generic
  // CHECK:           arith.constant 4.000000e+00 : f32
  // CHECK-NEXT:      arith.divf
  // CHECK:         %b = linalg.generic
  // CHECK:           arith.constant 9.000000e+00 : f32
  // CHECK-NEXT:      arith.divf
  // CHECK:         %[[SUMS:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<1x2x7x7xf32>, tensor<3x3xf32>) outs(%{{.*}} : tensor<1x2x3x3xf32>)
  // CHECK:         %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
  // CHECK-NEXT:    %[[ONES:.*]] = linalg.fill ins(%[[ONE]] : f32) outs(%{{.*}} : tensor<5x5xf32>)
  // CHECK:         %[[PONES:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> ((d0 + 1), (d1 + 1))>], {{.*}} ins(%[[ONES]] : tensor<5x5xf32>)
  // CHECK:         %[[COUNTS:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (((d0 * 2) + d2), ((d1 * 2) + d3))>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1)>], {{.*}} ins(%[[PONES]], %{{.*}} : tensor<7x7xf32>, tensor<3x3xf32>)
  // CHECK:         %c = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>], {{.*}} ins(%[[SUMS]], %[[COUNTS]] : tensor<1x2x3x3xf32>, tensor<3x3xf32>)
  // CHECK:           arith.divf
  func.func @avg_pool2d() -> (tensor<1x2x2x2xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) {
    %x = ge.data "x" index 0 : tensor<1x2x5x5xf32>
    %a = ge.avg_pool2d %x {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, count_include_pad = 0 : i64} : tensor<1x2x5x5xf32> -> tensor<1x2x2x2xf32>
    %b = ge.avg_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, count_include_pad = 1 : i64} : tensor<1x2x5x5xf32> -> tensor<1x2x3x3xf32>
    %c = ge.avg_pool2d %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, count_include_pad = 0 : i64} : tensor<1x2x5x5xf32> -> tensor<1x2x3x3xf32>
    func.return %a, %b, %c : tensor<1x2x2x2xf32>, tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>
  }

  // Sum over H and W into size-1 dims (constant-0 output indices), then divide by H * W = 20.
  // CHECK-LABEL: func.func @global_avg_pool()
  // CHECK:         %[[S:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, 0, 0)>], iterator_types = ["parallel", "parallel", "reduction", "reduction"]} ins(%x : tensor<1x3x4x5xf32>) outs(%{{.*}} : tensor<1x3x1x1xf32>)
  // CHECK:         %y = linalg.generic {{.*}} ins(%[[S]] : tensor<1x3x1x1xf32>)
  // CHECK:           arith.constant 2.000000e+01 : f32
  // CHECK-NEXT:      arith.divf
  func.func @global_avg_pool() -> tensor<1x3x1x1xf32> {
    %x = ge.data "x" index 0 : tensor<1x3x4x5xf32>
    %y = ge.global_avg_pool %x : tensor<1x3x4x5xf32> -> tensor<1x3x1x1xf32>
    func.return %y : tensor<1x3x1x1xf32>
  }

  // reduce_sum drops or keeps (constant 0) the reduced dims; reduce_mean divides by their
  // product (2 * 4 = 8); a full reduction has a rank-0 result with an empty map.
  // CHECK-LABEL: func.func @reductions()
  // CHECK:         %s = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d2)>], iterator_types = ["parallel", "reduction", "parallel"]}
  // CHECK:         %[[MS:.*]] = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (0, d1, 0)>], iterator_types = ["reduction", "parallel", "reduction"]} ins(%x : tensor<2x3x4xf32>) outs(%{{.*}} : tensor<1x3x1xf32>)
  // CHECK:         %m = linalg.generic {{.*}} ins(%[[MS]] : tensor<1x3x1xf32>)
  // CHECK:           arith.constant 8.000000e+00 : f32
  // CHECK:         %[[IZ:.*]] = arith.constant 0 : i32
  // CHECK-NEXT:    %[[IF:.*]] = linalg.fill ins(%[[IZ]] : i32) outs(%{{.*}} : tensor<i32>) -> tensor<i32>
  // CHECK-NEXT:    %t = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> ()>], iterator_types = ["reduction", "reduction"]} ins(%i : tensor<2x3xi32>) outs(%[[IF]] : tensor<i32>)
  // CHECK:           arith.addi
  func.func @reductions() -> (tensor<2x4xf32>, tensor<1x3x1xf32>, tensor<i32>) {
    %x = ge.data "x" index 0 : tensor<2x3x4xf32>
    %s = ge.reduce_sum %x {axes = array<i64: 1>, keepdims = 0 : i64} : tensor<2x3x4xf32> -> tensor<2x4xf32>
    %m = ge.reduce_mean %x {axes = array<i64: 0, -1>, keepdims = 1 : i64} : tensor<2x3x4xf32> -> tensor<1x3x1xf32>
    %i = ge.data "i" index 1 : tensor<2x3xi32>
    %t = ge.reduce_sum %i {axes = array<i64: 0, 1>, keepdims = 0 : i64} : tensor<2x3xi32> -> tensor<i32>
    func.return %s, %m, %t : tensor<2x4xf32>, tensor<1x3x1xf32>, tensor<i32>
  }

  // Graph structure ops pass through unchanged.
  // CHECK:       ge.variable @v : tensor<2xf32>
  // CHECK-LABEL: func.func @graph_ops_kept()
  // CHECK-NEXT:    %d = ge.data "d" index 0 : tensor<*xf32>
  // CHECK-NEXT:    ge.assign_if_nonempty @v, %d : tensor<*xf32>
  // CHECK-NEXT:    %c = ge.const "c" = dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
  // CHECK-NEXT:    ge.assign @v, %c {name = "c_assign"} : tensor<2xf32>
  // CHECK-NEXT:    %r = ge.read_variable @v : tensor<2xf32>
  // CHECK-NEXT:    func.return %r : tensor<2xf32>
  ge.variable @v : tensor<2xf32>
  func.func @graph_ops_kept() -> tensor<2xf32> {
    %d = ge.data "d" index 0 : tensor<*xf32>
    ge.assign_if_nonempty @v, %d : tensor<*xf32>
    %c = ge.const "c" = dense<[1.0, 2.0]> : tensor<2xf32>
    ge.assign @v, %c {name = "c_assign"} : tensor<2xf32>
    %r = ge.read_variable @v : tensor<2xf32>
    func.return %r : tensor<2xf32>
  }
}

// -----

// A dynamic dimension is a LoweringError naming the op.
builtin.module {
  func.func @main() -> tensor<?x2xf32> {
    %x = ge.data "x" index 0 : tensor<?x3xf32>
    %w = ge.const "w" : tensor<3x2xf32>
    %y = ge.matmul %x, %w : (tensor<?x3xf32>, tensor<3x2xf32>) -> tensor<?x2xf32>
    func.return %y : tensor<?x2xf32>
  }
}

// CHECK: ge.matmul: dynamic dimension in tensor<?x3xf32> not supported; give the graph inputs static shapes
// LOOPS: ge.matmul: dynamic dimension in tensor<?x3xf32> not supported; give the graph inputs static shapes

// -----

builtin.module {
  func.func @main() -> tensor<2x?xf32> {
    %x = ge.data "x" index 0 : tensor<2x?xf32>
    %y = ge.relu %x : tensor<2x?xf32>
    func.return %y : tensor<2x?xf32>
  }
}

// CHECK: ge.relu: dynamic dimension in tensor<2x?xf32> not supported; give the graph inputs static shapes

// -----

builtin.module {
  func.func @main() -> tensor<2xi32> {
    %x = ge.data "x" index 0 : tensor<2x3xi32>
    %y = ge.reduce_mean %x {axes = array<i64: 1>, keepdims = 0 : i64} : tensor<2x3xi32> -> tensor<2xi32>
    func.return %y : tensor<2xi32>
  }
}

// CHECK: ge.reduce_mean: integer element type i32 is not supported
