// RUN: wrc-opt %s -p convert-ge-to-linalg,ge-bufferize -t 'numpy{native=false pool-min-bytes=0 hoist=false}' | filecheck %s

// A concatenation copies its inputs into a buffer with a spare leading cell, then copies
// that out (the lowering's form): the copy out is dropped, the result *is* the buffer's
// contiguous part past the spare cell (a view at a byte offset), and the buffer's array
// stays live as long as the result is read. Its inputs, computed here and read by nothing
// else, are computed straight into their parts of it (`find_concat_parts`): no copy in
// either. Below, the relu reads the concatenation and writes a new array, never over the
// concatenation's own.

builtin.module {
  func.func @cat(%x: tensor<1x2x3x3xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x4x3x3xf32> {
    %a = ge.relu %x : tensor<1x2x3x3xf32>
    %b = ge.add %x, %w : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    %c = ge.concat %a, %b {axis = 1 : i64} : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x4x3x3xf32>
    %d = ge.relu %c : tensor<1x4x3x3xf32>
    %e = ge.add %d, %c : (tensor<1x4x3x3xf32>, tensor<1x4x3x3xf32>) -> tensor<1x4x3x3xf32>
    func.return %e : tensor<1x4x3x3xf32>
  }

  // %b is read again after the concatenation: it keeps its array and its copy; %a is
  // still computed into its part.
  func.func @reread(%x: tensor<1x2x3x3xf32>, %w: tensor<1x2x3x3xf32>) -> tensor<1x4x3x3xf32> {
    %a = ge.relu %x : tensor<1x2x3x3xf32>
    %b = ge.add %x, %w : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    %c = ge.concat %a, %b {axis = 1 : i64} : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x4x3x3xf32>
    %d = ge.concat %b, %b {axis = 1 : i64} : (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x4x3x3xf32>
    %e = ge.add %d, %c : (tensor<1x4x3x3xf32>, tensor<1x4x3x3xf32>) -> tensor<1x4x3x3xf32>
    func.return %e : tensor<1x4x3x3xf32>
  }
}

// CHECK:      def graph(G, a0, a1):
// CHECK:      [[BUF:v[0-9]+]] = np.empty([[SPARE:k[0-9]+]], [[F32:k[0-9]+]])
// CHECK-NEXT: [[A:v[0-9]+]] = _nd([[HALF:k[0-9]+]], [[F32]], [[BUF]], [[CELL:k[0-9]+]], [[ST:k[0-9]+]])
// CHECK-NEXT: np.maximum(a0, {{k[0-9]+}}, out=[[A]])
// CHECK-NEXT: [[B:v[0-9]+]] = _nd([[HALF]], [[F32]], [[BUF]], [[CELL2:k[0-9]+]], [[ST]])
// CHECK-NEXT: np.add(a0, a1, out=[[B]])
// CHECK-NEXT: [[C:v[0-9]+]] = _nd([[SHAPE:k[0-9]+]], [[F32]], [[BUF]], [[CELL]], {{k[0-9]+}})
// CHECK-NEXT: [[D:v[0-9]+]] = np.empty([[SHAPE]], [[F32]])
// CHECK-NEXT: np.maximum([[C]], {{k[0-9]+}}, out=[[D]])
// CHECK-NEXT: [[E:v[0-9]+]] = [[D]]
// CHECK-NEXT: np.add([[D]], [[C]], out=[[E]])
// CHECK-NEXT: return {{\[}}[[E]]{{\]}}
// CHECK-DAG:  #   [[SPARE]] = (1, 5, 3, 3)
// CHECK-DAG:  #   [[HALF]] = (1, 2, 3, 3)
// CHECK-DAG:  #   [[SHAPE]] = (1, 4, 3, 3)
// CHECK-DAG:  #   [[CELL]] = 36
// CHECK-DAG:  #   [[CELL2]] = 108
// CHECK:      # func @reread

// CHECK:      def graph(G, a0, a1):
// CHECK:      [[BUF:v[0-9]+]] = np.empty({{k[0-9]+}}, [[F32]])
// CHECK-NEXT: [[A:v[0-9]+]] = _nd({{k[0-9]+}}, [[F32]], [[BUF]], {{k[0-9]+}}, {{k[0-9]+}})
// CHECK-NEXT: np.maximum(a0, {{k[0-9]+}}, out=[[A]])
// CHECK-NEXT: [[B:v[0-9]+]] = np.empty(
// CHECK-NEXT: np.add(a0, a1, out=[[B]])
// CHECK:      np.copyto({{v[0-9]+}}, [[B]])
// CHECK:      return
