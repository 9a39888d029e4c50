// RUN: wrc-opt %s | wrc-opt | filecheck %s
// RUN: %roundtrip | filecheck %s
// RUN: wrc-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// Every ge op parses, prints in its custom syntax (the exact text is checked) and survives a
// trip through the generic form (%roundtrip). The third run checks that the structural ops
// keep their data in properties.

builtin.module {
  ge.variable @w_var : tensor<4x3xf32>
  ge.variable @b_var : tensor<3xf32> {init = "b"}
  ge.variable @s_var : tensor<f32> {init = "s", init_value = dense<2.5> : tensor<f32>}
  ge.variable @i_var : tensor<2xi32> {init = "i", init_value = dense<[1, 2]> : tensor<2xi32>}
  func.func @main() -> (tensor<2x3xf32>, tensor<?x3xf32>) {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %dyn = ge.data "dyn" index 1 : tensor<?x4xf32>
    %u = ge.data "u" index 2 : tensor<*xf32>
    %c = ge.const "c" : tensor<4x3xf32>
    %b = ge.const "b" = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
    %s = ge.const "s" = dense<2.5> : tensor<f32>
    %i = ge.const "i" = dense<[1, 2]> : tensor<2xi32>
    %k = ge.const "k" : tensor<2x4x3xf32> {tag = "weights"}
    %k2 = ge.const "k2" : tensor<2x3x5xf32>
    %w = ge.read_variable @w_var : tensor<4x3xf32>
    ge.assign @w_var, %c {name = "c_assign"} : tensor<4x3xf32>
    ge.assign @b_var, %b : tensor<3xf32>
    ge.assign_if_nonempty @w_var, %u : tensor<*xf32>
    ge.assign_if_nonempty @b_var, %b : tensor<3xf32>
    %m = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %md = ge.matmul %dyn, %w : (tensor<?x4xf32>, tensor<4x3xf32>) -> tensor<?x3xf32>
    %bm = ge.matmul %k, %k2 : (tensor<2x4x3xf32>, tensor<2x3x5xf32>) -> tensor<2x4x5xf32>
    %a = ge.add %m, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %sb = ge.sub %a, %s : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %ml = ge.mul %sb, %a : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %dv = ge.div %ml, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %ii = ge.add %i, %i : (tensor<2xi32>, tensor<2xi32>) -> tensor<2xi32>
    %r = ge.relu %dv : tensor<2x3xf32>
    %sg = ge.sigmoid %r : tensor<2x3xf32>
    %th = ge.tanh %sg : tensor<2x3xf32>
    %ex = ge.exp %th : tensor<2x3xf32>
    %sm = ge.softmax %ex {axis = -1 : i64} : tensor<2x3xf32>
    %rs = ge.reshape %sm : tensor<2x3xf32> -> tensor<3x2xf32>
    %tr = ge.transpose %rs {perm = array<i64: 1, 0>} : tensor<3x2xf32> -> tensor<2x3xf32>
    %e = ge.data "e" index 4 : tensor<3x0xf32>
    %er = ge.reshape %e : tensor<3x0xf32> -> tensor<0x7xf32>
    %img = ge.data "img" index 3 : tensor<1x3x8x8xf32>
    %f = ge.const "f" : tensor<4x3x3x3xf32>
    %cv = ge.conv2d %img, %f {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
    %mp = ge.max_pool2d %cv {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>} : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
    %ap = ge.avg_pool2d %mp {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, count_include_pad = 0 : i64} : tensor<1x4x4x4xf32> -> tensor<1x4x4x4xf32>
    %gp = ge.global_avg_pool %ap : tensor<1x4x4x4xf32> -> tensor<1x4x1x1xf32>
    %rsum = ge.reduce_sum %gp {axes = array<i64: 2, 3>, keepdims = 0 : i64} : tensor<1x4x1x1xf32> -> tensor<1x4xf32>
    %rmean = ge.reduce_mean %rsum {axes = array<i64: -1>, keepdims = 1 : i64} : tensor<1x4xf32> -> tensor<1x1xf32>
    func.return %tr, %md : tensor<2x3xf32>, tensor<?x3xf32>
  }
}

// CHECK: builtin.module {
// CHECK-NEXT:   ge.variable @w_var : tensor<4x3xf32>
// CHECK-NEXT:   ge.variable @b_var : tensor<3xf32> {init = "b"}
// CHECK-NEXT:   ge.variable @s_var : tensor<f32> {init = "s", init_value = dense<2.500000e+00> : tensor<f32>}
// CHECK-NEXT:   ge.variable @i_var : tensor<2xi32> {init = "i", init_value = dense<[1, 2]> : tensor<2xi32>}
// CHECK-NEXT:   func.func @main() -> (tensor<2x3xf32>, tensor<?x3xf32>) {
// CHECK-NEXT:     %x = ge.data "x" index 0 : tensor<2x4xf32>
// CHECK-NEXT:     %dyn = ge.data "dyn" index 1 : tensor<?x4xf32>
// CHECK-NEXT:     %u = ge.data "u" index 2 : tensor<*xf32>
// CHECK-NEXT:     %c = ge.const "c" : tensor<4x3xf32>
// CHECK-NEXT:     %b = ge.const "b" = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00]> : tensor<3xf32>
// CHECK-NEXT:     %s = ge.const "s" = dense<2.500000e+00> : tensor<f32>
// CHECK-NEXT:     %i = ge.const "i" = dense<[1, 2]> : tensor<2xi32>
// CHECK-NEXT:     %k = ge.const "k" : tensor<2x4x3xf32> {tag = "weights"}
// CHECK-NEXT:     %k2 = ge.const "k2" : tensor<2x3x5xf32>
// CHECK-NEXT:     %w = ge.read_variable @w_var : tensor<4x3xf32>
// CHECK-NEXT:     ge.assign @w_var, %c {name = "c_assign"} : tensor<4x3xf32>
// CHECK-NEXT:     ge.assign @b_var, %b : tensor<3xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @w_var, %u : tensor<*xf32>
// CHECK-NEXT:     ge.assign_if_nonempty @b_var, %b : tensor<3xf32>
// CHECK-NEXT:     %m = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %md = ge.matmul %dyn, %w : (tensor<?x4xf32>, tensor<4x3xf32>) -> tensor<?x3xf32>
// CHECK-NEXT:     %bm = ge.matmul %k, %k2 : (tensor<2x4x3xf32>, tensor<2x3x5xf32>) -> tensor<2x4x5xf32>
// CHECK-NEXT:     %a = ge.add %m, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %sb = ge.sub %a, %s : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %ml = ge.mul %sb, %a : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %dv = ge.div %ml, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:     %ii = ge.add %i, %i : (tensor<2xi32>, tensor<2xi32>) -> tensor<2xi32>
// CHECK-NEXT:     %r = ge.relu %dv : tensor<2x3xf32>
// CHECK-NEXT:     %sg = ge.sigmoid %r : tensor<2x3xf32>
// CHECK-NEXT:     %th = ge.tanh %sg : tensor<2x3xf32>
// CHECK-NEXT:     %ex = ge.exp %th : tensor<2x3xf32>
// CHECK-NEXT:     %sm = ge.softmax %ex {axis = -1 : i64} : tensor<2x3xf32>
// CHECK-NEXT:     %rs = ge.reshape %sm : tensor<2x3xf32> -> tensor<3x2xf32>
// CHECK-NEXT:     %tr = ge.transpose %rs {perm = array<i64: 1, 0>} : tensor<3x2xf32> -> tensor<2x3xf32>
// CHECK-NEXT:     %e = ge.data "e" index 4 : tensor<3x0xf32>
// CHECK-NEXT:     %er = ge.reshape %e : tensor<3x0xf32> -> tensor<0x7xf32>
// CHECK-NEXT:     %img = ge.data "img" index 3 : tensor<1x3x8x8xf32>
// CHECK-NEXT:     %f = ge.const "f" : tensor<4x3x3x3xf32>
// CHECK-NEXT:     %cv = ge.conv2d %img, %f {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
// CHECK-NEXT:     %mp = ge.max_pool2d %cv {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>} : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
// CHECK-NEXT:     %ap = ge.avg_pool2d %mp {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, count_include_pad = 0 : i64} : tensor<1x4x4x4xf32> -> tensor<1x4x4x4xf32>
// CHECK-NEXT:     %gp = ge.global_avg_pool %ap : tensor<1x4x4x4xf32> -> tensor<1x4x1x1xf32>
// CHECK-NEXT:     %rsum = ge.reduce_sum %gp {axes = array<i64: 2, 3>, keepdims = 0 : i64} : tensor<1x4x1x1xf32> -> tensor<1x4xf32>
// CHECK-NEXT:     %rmean = ge.reduce_mean %rsum {axes = array<i64: -1>, keepdims = 1 : i64} : tensor<1x4xf32> -> tensor<1x1xf32>
// CHECK-NEXT:     func.return %tr, %md : tensor<2x3xf32>, tensor<?x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }

// GENERIC: "ge.variable"() <{sym_name = "w_var", type = tensor<4x3xf32>}> : () -> ()
// GENERIC: "ge.variable"() <{sym_name = "b_var", type = tensor<3xf32>, init = "b"}> : () -> ()
// GENERIC: "ge.variable"() <{sym_name = "s_var", type = tensor<f32>, init = "s", init_value = dense<2.500000e+00> : tensor<f32>}> : () -> ()
// GENERIC: "ge.variable"() <{sym_name = "i_var", type = tensor<2xi32>, init = "i", init_value = dense<[1, 2]> : tensor<2xi32>}> : () -> ()
// GENERIC: %u = "ge.data"() <{name = "u", index = 2 : i64}> : () -> tensor<*xf32>
// GENERIC: %c = "ge.const"() <{name = "c"}> : () -> tensor<4x3xf32>
// GENERIC: %b = "ge.const"() <{name = "b", value = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00]> : tensor<3xf32>}> : () -> tensor<3xf32>
// GENERIC: %s = "ge.const"() <{name = "s", value = dense<2.500000e+00> : tensor<f32>}> : () -> tensor<f32>
// GENERIC: %i = "ge.const"() <{name = "i", value = dense<[1, 2]> : tensor<2xi32>}> : () -> tensor<2xi32>
// GENERIC: %k = "ge.const"() <{name = "k"}> {tag = "weights"} : () -> tensor<2x4x3xf32>
// GENERIC: %k2 = "ge.const"() <{name = "k2"}> : () -> tensor<2x3x5xf32>
// GENERIC: %w = "ge.read_variable"() <{variable = @w_var}> : () -> tensor<4x3xf32>
// GENERIC: "ge.assign"(%c) <{variable = @w_var, name = "c_assign"}> : (tensor<4x3xf32>) -> ()
// GENERIC: "ge.assign"(%b) <{variable = @b_var}> : (tensor<3xf32>) -> ()
// GENERIC: "ge.assign_if_nonempty"(%u) <{variable = @w_var}> : (tensor<*xf32>) -> ()
// GENERIC: "ge.assign_if_nonempty"(%b) <{variable = @b_var}> : (tensor<3xf32>) -> ()
// GENERIC: %sm = "ge.softmax"(%ex) <{axis = -1 : i64}> : (tensor<2x3xf32>) -> tensor<2x3xf32>
// GENERIC: %f = "ge.const"() <{name = "f"}> : () -> tensor<4x3x3x3xf32>
