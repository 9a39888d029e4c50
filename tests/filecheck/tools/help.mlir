// RUN: env COLUMNS=10000 wrc-opt --help | filecheck %s

// --help lists wrc's passes among the available ones, and the `numpy` target (the JIT's
// generated source; COLUMNS keeps each list on one line).

// CHECK: usage: wrc-opt
// CHECK: Available targets are: {{.*}}numpy
// CHECK: -p PASSES, --passes PASSES
// CHECK-NEXT: Available passes are:
// CHECK-DAG: {{,ge-const-to-var(?=,|$)}}
// CHECK-DAG: {{,ge-split-weight-refreshable(?=,|$)}}
