// RUN: not wrc-opt %s -p no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// RUN: not wrc-opt %s -p 'ge-const-to-var{names=w,,b}' 2>&1 | filecheck %s --check-prefix=SYNTAX
// RUN: not wrc-opt %s -p 'ge-const-to-var{nmes=w}' 2>&1 | filecheck %s --check-prefix=OPTION
// RUN: not wrc-opt %s.does-not-exist 2>&1 | filecheck %s --check-prefix=FILE
// RUN: not wrc-opt %s -p 'ge-const-to-var{names=nope}' 2>&1 | filecheck %s --check-prefix=FAIL
// RUN: not wrc-opt %s -t 'numpy{reuse=false}' 2>&1 | filecheck %s --check-prefix=TARGET

// Command-line mistakes and failing passes are diagnostics (exit code 1), not tracebacks,
// and not "internal errors".

// PASS-NOT: {{Traceback|internal error}}
// PASS: wrc-opt: error: Unrecognized passes: ['no-such-pass']
// PASS-NOT: Traceback

// SYNTAX-NOT: {{Traceback|internal error}}
// SYNTAX: wrc-opt: error: Error parsing pass pipeline specification:
// SYNTAX-NOT: Traceback

// OPTION-NOT: {{Traceback|internal error}}
// OPTION: wrc-opt: error: Provided arguments ["nmes"] not found in expected arguments ["names"]
// OPTION-NOT: Traceback

// FILE-NOT: {{Traceback|internal error}}
// FILE: wrc-opt: error: [Errno 2] No such file or directory: '{{.*}}bad-command-line.mlir.does-not-exist'
// FILE-NOT: Traceback

// TARGET-NOT: {{Traceback|internal error}}
// TARGET: wrc-opt: error: Provided arguments ["reuse"] not found in expected arguments [{{.*}}"reuse_buffers"{{.*}}]
// TARGET-NOT: Traceback

// A pass that rejects its input: the reason on stderr, no output IR.
// FAIL-NOT: {{Traceback|internal error|builtin.module}}
// FAIL: wrc-opt: error: ge-const-to-var: "nope" is not a ge.const of the graph @main
// FAIL-NOT: {{Traceback|builtin.module}}

builtin.module {
  func.func @main() -> tensor<2xf32> {
    %w = ge.const "w" : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}
