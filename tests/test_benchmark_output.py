"""Reading benchmark_model's output: real captures of every output generation, the ways output goes
wrong (never a latency of 0), and the loopback phone's stand-in binary run directly on a tiny model."""
# ruff: noqa: E501  (the captured outputs below are kept verbatim, one output line per source line)

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from loopback.benchmark_model import BUNDLED, FORMATS, install, latprof_sources, profile_report

from latprof.attribution import attribute
from latprof.benchmark_output import (
    GENERATIONS,
    MEDIAN_MIN_US,
    format_flags,
    network_operators,
    parse_benchmark_output,
    refuse_delegate_failures,
)
from latprof.convert import ModelCache, ensure_models
from latprof.delegate_log import DelegateRefused
from latprof.errors import LatprofError
from latprof.ops import OpSpec

# --- Real captured outputs -----------------------------------------------------------------------

# TensorFlow Lite 2.x (no percentiles, no prefixes), count=1 warm-up, avg in exponent form, op
# profiling with the [start] column.  A MobileNet v1 run on RISC-V QEMU, from
# https://github.com/NobuoTsukamoto/meta-tensorflow-lite/blob/main/doc/tensorflow-lite-benchmark.md
NOBUO_V2_PROFILED = (
    "STARTING!\n"
    "Log parameter values verbosely: [0]\n"
    "Num threads: [4]\n"
    "Graph: [./mobilenet_v1_1.0_224.tflite]\n"
    "Enable op profiling: [1]\n"
    "#threads used for CPU inference: [4]\n"
    "Loaded model ./mobilenet_v1_1.0_224.tflite\n"
    "The input model file size (MB): 16.9008\n"
    "Initialized session in 17.187ms.\n"
    "Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.\n"
    "count=1 curr=3512391\n"
    "\n"
    "Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.\n"
    "count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798\n"
    "\n"
    "Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, "
    "Inference (avg): 2.95034e+06\n"
    "Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual "
    "memory footprint of the model at runtime. Take the information at your discretion.\n"
    "Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859\n"
    "Profiling Info for Benchmark Initialization:\n"
    "============================== Run Order ==============================\n"
    "\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]\n"
    "\t         AllocateTensors\t            0.000\t    1.356\t    1.356\t100.000%\t100.000%\t     0.000\t        1\tAllocateTensors/0\n"
    "\n"
    "============================== Top by Computation Time ==============================\n"
    "\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]\n"
    "\t         AllocateTensors\t            0.000\t    1.356\t    1.356\t100.000%\t100.000%\t     0.000\t        1\tAllocateTensors/0\n"
    "\n"
    "Number of nodes executed: 1\n"
    "============================== Summary by node type ==============================\n"
    "\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]\n"
    "\t         AllocateTensors\t        1\t     1.356\t   100.000%\t   100.000%\t     0.000\t        1\n"
    "\n"
    "Timings (microseconds): count=1 curr=1356\n"
    "Memory (bytes): count=0\n"
    "1 nodes observed\n"
    "\n"
    "\n"
    "\n"
    "Operator-wise Profiling Info for Regular Benchmark Runs:\n"
    "============================== Run Order ==============================\n"
    "\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]\n"
    "\t                 CONV_2D\t            0.066\t   87.754\t   60.957\t  2.066%\t  2.066%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0\n"
    "\t       DEPTHWISE_CONV_2D\t           61.033\t   53.628\t   49.870\t  1.691%\t  3.757%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6]:1\n"
    "\t                 CONV_2D\t          110.912\t  134.346\t  147.808\t  5.011%\t  8.768%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6]:2\n"
    "\t       DEPTHWISE_CONV_2D\t          258.730\t   27.363\t   34.010\t  1.153%\t  9.921%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_2_depthwise/Relu6]:3\n"
    "\t                 CONV_2D\t          292.750\t  125.424\t  135.911\t  4.607%\t 14.528%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_2_pointwise/Relu6]:4\n"
    "\t       DEPTHWISE_CONV_2D\t          428.672\t   38.643\t   47.423\t  1.608%\t 16.135%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_3_depthwise/Relu6]:5\n"
    "\t                 CONV_2D\t          476.101\t  233.972\t  242.524\t  8.221%\t 24.357%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6]:6\n"
    "\t       DEPTHWISE_CONV_2D\t          718.645\t   35.876\t   19.039\t  0.645%\t 25.002%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_4_depthwise/Relu6]:7\n"
    "\t                 CONV_2D\t          737.691\t  144.354\t  130.485\t  4.423%\t 29.426%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_4_pointwise/Relu6]:8\n"
    "\t       DEPTHWISE_CONV_2D\t          868.186\t   32.953\t   30.232\t  1.025%\t 30.450%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_5_depthwise/Relu6]:9\n"
    "\t                 CONV_2D\t          898.426\t  263.724\t  277.374\t  9.403%\t 39.853%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6]:10\n"
    "\t       DEPTHWISE_CONV_2D\t         1175.813\t   13.673\t   11.954\t  0.405%\t 40.258%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_6_depthwise/Relu6]:11\n"
    "\t                 CONV_2D\t         1187.773\t  166.067\t  137.816\t  4.672%\t 44.930%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_6_pointwise/Relu6]:12\n"
    "\t       DEPTHWISE_CONV_2D\t         1325.600\t   19.176\t   15.824\t  0.536%\t 45.467%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_7_depthwise/Relu6]:13\n"
    "\t                 CONV_2D\t         1341.430\t  238.119\t  230.753\t  7.822%\t 53.289%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_7_pointwise/Relu6]:14\n"
    "\t       DEPTHWISE_CONV_2D\t         1572.193\t   20.572\t   16.234\t  0.550%\t 53.839%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_8_depthwise/Relu6]:15\n"
    "\t                 CONV_2D\t         1588.434\t  230.877\t  249.023\t  8.442%\t 62.281%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_8_pointwise/Relu6]:16\n"
    "\t       DEPTHWISE_CONV_2D\t         1837.471\t   14.557\t   22.527\t  0.764%\t 63.045%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_9_depthwise/Relu6]:17\n"
    "\t                 CONV_2D\t         1860.007\t  276.404\t  243.619\t  8.259%\t 71.303%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_9_pointwise/Relu6]:18\n"
    "\t       DEPTHWISE_CONV_2D\t         2103.639\t   24.506\t   16.815\t  0.570%\t 71.873%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_10_depthwise/Relu6]:19\n"
    "\t                 CONV_2D\t         2120.467\t  224.358\t  248.456\t  8.423%\t 80.296%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_10_pointwise/Relu6]:20\n"
    "\t       DEPTHWISE_CONV_2D\t         2368.936\t   27.001\t   21.415\t  0.726%\t 81.022%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_11_depthwise/Relu6]:21\n"
    "\t                 CONV_2D\t         2390.360\t  239.657\t  242.949\t  8.236%\t 89.258%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_11_pointwise/Relu6]:22\n"
    "\t       DEPTHWISE_CONV_2D\t         2633.321\t   16.929\t    5.845\t  0.198%\t 89.456%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_12_depthwise/Relu6]:23\n"
    "\t                 CONV_2D\t         2639.171\t  109.905\t  114.411\t  3.878%\t 93.334%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_12_pointwise/Relu6]:24\n"
    "\t       DEPTHWISE_CONV_2D\t         2753.591\t    4.318\t    5.736\t  0.194%\t 93.529%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_13_depthwise/Relu6]:25\n"
    "\t                 CONV_2D\t         2759.331\t  173.079\t  177.589\t  6.020%\t 99.549%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6]:26\n"
    "\t         AVERAGE_POOL_2D\t         2936.930\t    0.828\t    0.869\t  0.029%\t 99.578%\t     0.000\t        1\t[MobilenetV1/Logits/AvgPool_1a/AvgPool]:27\n"
    "\t                 CONV_2D\t         2937.801\t   11.354\t   12.185\t  0.413%\t 99.992%\t     0.000\t        1\t[MobilenetV1/Logits/Conv2d_1c_1x1/BiasAdd]:28\n"
    "\t                 SQUEEZE\t         2949.993\t    0.013\t    0.017\t  0.001%\t 99.992%\t     0.000\t        1\t[MobilenetV1/Logits/SpatialSqueeze]:29\n"
    "\t                 SOFTMAX\t         2950.011\t    0.230\t    0.233\t  0.008%\t100.000%\t     0.000\t        1\t[MobilenetV1/Predictions/Reshape_1]:30\n"
    "\n"
    "============================== Top by Computation Time ==============================\n"
    "\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]\n"
    "\t                 CONV_2D\t          898.426\t  263.724\t  277.374\t  9.403%\t  9.403%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6]:10\n"
    "\t                 CONV_2D\t         1588.434\t  230.877\t  249.023\t  8.442%\t 17.845%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_8_pointwise/Relu6]:16\n"
    "\t                 CONV_2D\t         2120.467\t  224.358\t  248.456\t  8.423%\t 26.267%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_10_pointwise/Relu6]:20\n"
    "\t                 CONV_2D\t         1860.007\t  276.404\t  243.619\t  8.259%\t 34.526%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_9_pointwise/Relu6]:18\n"
    "\t                 CONV_2D\t         2390.360\t  239.657\t  242.949\t  8.236%\t 42.761%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_11_pointwise/Relu6]:22\n"
    "\t                 CONV_2D\t          476.101\t  233.972\t  242.524\t  8.221%\t 50.983%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6]:6\n"
    "\t                 CONV_2D\t         1341.430\t  238.119\t  230.753\t  7.822%\t 58.805%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_7_pointwise/Relu6]:14\n"
    "\t                 CONV_2D\t         2759.331\t  173.079\t  177.589\t  6.020%\t 64.825%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6]:26\n"
    "\t                 CONV_2D\t          110.912\t  134.346\t  147.808\t  5.011%\t 69.836%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6]:2\n"
    "\t                 CONV_2D\t         1187.773\t  166.067\t  137.816\t  4.672%\t 74.508%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_6_pointwise/Relu6]:12\n"
    "\n"
    "Number of nodes executed: 31\n"
    "============================== Summary by node type ==============================\n"
    "\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]\n"
    "\t                 CONV_2D\t       15\t  2651.853\t    89.897%\t    89.897%\t     0.000\t       15\n"
    "\t       DEPTHWISE_CONV_2D\t       13\t   296.919\t    10.065%\t    99.962%\t     0.000\t       13\n"
    "\t         AVERAGE_POOL_2D\t        1\t     0.869\t     0.029%\t    99.992%\t     0.000\t        1\n"
    "\t                 SOFTMAX\t        1\t     0.232\t     0.008%\t    99.999%\t     0.000\t        1\n"
    "\t                 SQUEEZE\t        1\t     0.016\t     0.001%\t   100.000%\t     0.000\t        1\n"
    "\n"
    "Timings (microseconds): count=50 first=2989660 curr=2912978 min=2727203 max=3189476 avg=2.9499e+06 std=109770\n"
    "Memory (bytes): count=0\n"
    "31 nodes observed\n"
)
NOBUO_FLAGS = {"graph": "./mobilenet_v1_1.0_224.tflite", "num_threads": 4, "enable_op_profiling": True}

# TensorFlow Lite 2.13 built with CMake: "INFO: " prefixes, only --graph passed, so only Graph echoed.
# https://github.com/tensorflow/tensorflow/issues/61946
TF61946_V2_INFO = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Graph: [./mobilenet_v1_1.0_224_quant.tflite]
INFO: Loaded model ./mobilenet_v1_1.0_224_quant.tflite
INFO: The input model file size (MB): 4.27635
INFO: Initialized session in 0.53ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=5 first=124020 curr=116061 min=115177 max=124020 avg=117225 std=3412

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=121183 curr=115199 min=111222 max=121324 avg=116066 std=1906

INFO: Inference timings in us: Init: 530, First inference: 124020, Warmup (avg): 117225, Inference (avg): 116066
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual \
memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=3.75 overall=12.1914
"""

# A current build with percentiles: logcat (threadtime) of the Android benchmark app
# (android_aarch64_benchmark_model.apk) on a OnePlus CPH2641 with --num_threads=4 --num_runs=25
# --use_gpu=false --use_nnapi=false.  Pasted in a public GitHub Markdown report that the code-search
# index served without its repository, so no URL could be recorded for it.
LOGCAT_CURRENT = """\
07-14 13:14:52.097 22838 22838 I tflite  : Log parameter values verbosely: [0]
07-14 13:14:52.097 22838 22838 I tflite  : Min num runs: [25]
07-14 13:14:52.097 22838 22838 I tflite  : Num threads: [4]
07-14 13:14:52.097 22838 22838 I tflite  : Graph: [/data/local/tmp/best_int8.tflite]
07-14 13:14:52.097 22838 22838 I tflite  : Signature to run: []
07-14 13:14:52.097 22838 22838 I tflite  : #threads used for CPU inference: [4]
07-14 13:14:52.097 22838 22838 I tflite  : Use gpu: [0]
07-14 13:14:52.097 22838 22838 I tflite  : Use NNAPI: [0]
07-14 13:14:52.098 22838 22838 I tflite  : Loaded model /data/local/tmp/best_int8.tflite
07-14 13:14:52.099 22838 22838 I tflite  : Initialized TensorFlow Lite runtime.
07-14 13:14:52.113 22838 22838 I tflite  : Created TensorFlow Lite XNNPACK delegate for CPU.
07-14 13:14:52.115 22838 22838 I tflite  : Replacing 539 out of 548 node(s) with delegate (TfLiteXNNPackDelegate) \
node, yielding 19 partitions for subgraph 0.
07-14 13:14:52.190 22838 22838 I tflite  : The input model file size (MB): 3.06409
07-14 13:14:52.190 22838 22838 I tflite  : Initialized session in 92.318ms.
07-14 13:14:52.218 22838 22838 I tflite  : Running benchmark for at least 1 iterations and at least 0.5 seconds but \
terminate if exceeding 150 seconds.
07-14 13:14:52.859 22838 22838 I tflite  : count=3 first=235158 curr=200386 min=199462 max=235158 avg=211669 \
std=16613 p5=199462 median=200386 p95=235158
07-14 13:14:52.859 22838 22838 I tflite  : Running benchmark for at least 25 iterations and at least 1 seconds but \
terminate if exceeding 150 seconds.
07-14 13:14:56.520 22838 22838 I tflite  : count=25 first=187533 curr=140990 min=140071 max=195121 avg=145528 \
std=13583 p5=140545 median=141253 p95=187533
07-14 13:14:56.521 22838 22838 I tflite  : Inference timings in us: Init: 92318, First inference: 235158, Warmup \
(avg): 211669, Inference (avg): 145528
07-14 13:14:56.521 22838 22838 I tflite  : Note: as the benchmark tool itself affects memory footprint, the \
following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your \
discretion.
07-14 13:14:56.521 22838 22838 I tflite  : Memory footprint delta from the start of the tool (MB): init=54.2852 \
overall=73.4102
"""
LOGCAT_FLAGS = {"graph": "/data/local/tmp/best_int8.tflite", "num_threads": 4, "num_runs": 25, "use_gpu": False,
                "use_nnapi": False}

# 2019 tool, "no stats" summary; the end of one run and the start of the next, cut inside its
# timed phase.  https://github.com/yuenshome/yuenshome.github.io/issues/77
YUENSHOME_OLD_NOSTATS = """\
Loaded model /data/local/tmp/tflite/tfmodel/mobilenet_v1_1.0_224_quant.tflite
resolved reporter
Initialized session in 9.933ms
Running benchmark for at least 4 iterations and at least 0.5 seconds
count=7 first=127425 curr=66709 min=66709 max=127425 avg=76605.9 std=20944

Running benchmark for at least 10 iterations and at least 1 seconds
count=15 first=66753 curr=66800 min=66699 max=66838 avg=66767.6 std=39

Average inference timings in us: Warmup: 76605.9, Init: 9933, no stats: 66767.6
"""
YUENSHOME_NEXT_RUN = """\
echo '[INFO] ==== arm64-v8a USE_GPU:false-2 /data/local/tmp/tflite/tfmodel/mobilenet_v1_1.0_224_quant.tflite ===='
STARTING!
Min num runs: [10]
Min runs duration (seconds): [1]
Inter-run delay (seconds): [-1]
Num threads: [2]
Benchmark name: []
Output prefix: []
Min warmup runs: [4]
Min warmup runs duration (seconds): [0.5]
Graph: [/data/local/tmp/tflite/tfmodel/mobilenet_v1_1.0_224_quant.tflite]
Input layers: []
Input shapes: []
Use nnapi : [0]
nnapi error: unable to open library libneuralnetworks.so
Loaded model /data/local/tmp/tflite/tfmodel/mobilenet_v1_1.0_224_quant.tflite
resolved reporter
Initialized session in 4.183ms
Running benchmark for at least 4 iterations and at least 0.5 seconds
count=13 first=39195 curr=37526 min=37464 max=39195 avg=37625.7 std=453

Running benchmark for at least 10 iterations and at least 1 seconds
count=25 first=37601 curr=37528 min=37413 max=3760"""

# The Android benchmark app's summary ("Inference:"), as TensorFlow's docs quote it from logcat.
# https://github.com/tensorflow/tensorflow/blob/master/tensorflow/lite/tools/benchmark/android/README.md
ANDROID_APP_OLD = "... tflite  : Average inference timings in us: Warmup: 91471, Init: 4108, Inference: 80660.1\n"

# --enable_op_profiling=true on a Raspberry Pi, cut where the capture stops (in the profiling report).
# https://github.com/google/XNNPACK/issues/999
XNNPACK999_CUT = """\
pi@raspberrypi:~/aXeleRate/example_scripts/tensorflow_lite/detector $ ./benchmark_model \
--graph=yolo_best_recall_int8_static.tflite  --enable_op_profiling=true --num_threads=4STARTING!
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [yolo_best_recall_int8_static.tflite]
Enable op profiling: [1]
#threads used for CPU inference: [4]
Loaded model yolo_best_recall_int8_static.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
The input model file size (MB): 3.67827
Initialized session in 18.777ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=9 first=64791 curr=56295 min=54873 max=65831 avg=57758.2 std=4065

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=58154 curr=53809 min=53077 max=60727 avg=55043.2 std=1562

Inference timings in us: Init: 18777, First inference: 64791, Warmup (avg): 57758.2, Inference (avg): 55043.2
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual \
memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=8.97656 overall=18.7227
Profiling Info for Benchmark Initialization:
============================== Run Order ================="""

# A space-separated value is an unknown flag to the tool, which then runs without a graph.
# https://github.com/tensorflow/tensorflow/issues/47175
TF47175_UNCONSUMED = """\
CPH1920:/data/local/tmp $ ./android_aarch64_benchmark_model_performance_options --graph test
STARTING!
Unconsumed cmdline flags: --graph test
WARNING: unrecognized commandline flag: --graph
WARNING: unrecognized commandline flag: test
The list of TFLite runtime options to be benchmarked: [all]
Please specify the name of your TF Lite input file with --graph
Please specify the name of your TF Lite input file with --graph
"""


# --- The parser on real outputs ------------------------------------------------------------------

def test_v2_output_with_op_profiling():
    run = parse_benchmark_output(NOBUO_V2_PROFILED, NOBUO_FLAGS)
    assert run.generation == "v2"
    assert (run.latency_us, run.statistic) == (2.95034e+06, "inference avg")
    assert run.inference.count == 50 and run.inference.p5 is None and run.inference.std == 109798
    assert run.warmup.count == 1 and run.warmup.min == run.warmup.max == run.warmup.avg == 3512391 and run.warmup.std == 0
    assert (run.init_us, run.first_inference_us, run.warmup_avg_us) == (17187, 3512391, 3.51239e+06)
    assert run.memory == {"init_mb": 4.21094, "overall_mb": 46.0859}
    assert run.params["Num threads"] == run.params["#threads used for CPU inference"] == "4"
    ops = run.op_profile
    assert len(ops) == 31 and [op.node_type for op in ops].count("CONV_2D") == 15
    first, last = ops[0], ops[-1]
    assert (first.node_type, first.start_ms, first.first_ms, first.avg_ms, first.percent, first.times_called) == \
        ("CONV_2D", 0.066, 87.754, 60.957, 2.066, 1)
    assert first.name == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"
    assert (last.node_type, last.cdf_percent) == ("SOFTMAX", 100.0)
    # The table adds up to its own total (op time), within the printed rounding.
    assert sum(op.avg_ms for op in ops) == pytest.approx(2949.9, rel=1e-3)


def test_v2_output_with_info_prefixes():
    run = parse_benchmark_output(TF61946_V2_INFO, {"graph": "./mobilenet_v1_1.0_224_quant.tflite"})
    assert run.generation == "v2"
    assert (run.latency_us, run.warmup.count, run.init_us) == (116066, 5, 530)
    assert run.params == {"Log parameter values verbosely": "0", "Graph": "./mobilenet_v1_1.0_224_quant.tflite"}
    assert run.memory == {"init_mb": 3.75, "overall_mb": 12.1914}


def test_current_output_with_percentiles_from_logcat():
    run = parse_benchmark_output(LOGCAT_CURRENT, LOGCAT_FLAGS)
    assert run.generation == "current"
    assert (run.latency_us, run.statistic) == (141253, "inference median")
    assert (run.inference.p5, run.inference.p95, run.inference.avg) == (140545, 187533, 145528)
    assert run.warmup.count == 3 and run.warmup.median == 200386
    assert run.inference_avg_us == 145528 and run.memory["overall_mb"] == 73.4102


def test_old_outputs_both_summaries():
    nostats = parse_benchmark_output(YUENSHOME_OLD_NOSTATS)
    assert nostats.generation == "old-nostats"
    assert (nostats.latency_us, nostats.statistic, nostats.warmup.count) == (66767.6, "inference avg", 7)
    assert (nostats.init_us, nostats.warmup_avg_us, nostats.first_inference_us) == (9933, 76605.9, None)
    app = parse_benchmark_output(ANDROID_APP_OLD)
    assert (app.generation, app.inference, app.warmup) == ("old", None, None)
    assert (app.latency_us, app.statistic, app.warmup_avg_us, app.init_us) == (80660.1, "summary inference avg", 91471, 4108)


def test_all_same_statistics():
    """Stat::OutputToStream prints ``count=<n> curr=<us>(all same)`` when every sample is equal:
    no avg= to find, yet every statistic is that value.  (The real v2 output above, with its timed
    line rewritten in that form.)"""
    line = "INFO: count=50 first=121183 curr=115199 min=111222 max=121324 avg=116066 std=1906"
    run = parse_benchmark_output(TF61946_V2_INFO.replace(line, "INFO: count=50 curr=116066(all same)"))
    stats = run.inference
    assert (stats.count, stats.first, stats.min, stats.max, stats.avg, stats.std) == (50, 116066, 116066, 116066, 116066, 0)
    assert stats.median is None and (run.latency_us, run.statistic) == (116066, "inference avg")
    assert run.generation == "v2"


def test_generations_are_documented():
    assert set(GENERATIONS) == {"current", "v2", "old", "old-nostats"}


# --- Flags: spelling and checking what ran -------------------------------------------------------

def test_format_flags_spells_benchmark_model_flags():
    flags = {"graph": "/data/local/tmp/m.tflite", "num_threads": 1, "use_xnnpack": True, "enable_op_profiling": False,
             "min_secs": 0.5, "warmup_min_secs": 1e-06}
    assert format_flags(flags) == ["--graph=/data/local/tmp/m.tflite", "--num_threads=1", "--use_xnnpack=true",
                                   "--enable_op_profiling=false", "--min_secs=0.5", "--warmup_min_secs=1e-06"]


@pytest.mark.parametrize("flags", [{"Num-Threads": 1}, {"min_secs": float("nan")}, {"graph": None}, {"graph": "a\nb"}])
def test_format_flags_refuses_what_the_tool_cannot_take(flags):
    with pytest.raises(LatprofError, match="benchmark_model"):
        format_flags(flags)


@pytest.mark.parametrize(("flag", "asked", "echo"), [
    ("num_threads", 2, "Num threads: [4]"),
    ("enable_op_profiling", False, "Enable op profiling: [1]"),
    ("graph", "mobilenet_v1_1.0_224.tflite", "Graph: [./mobilenet_v1_1.0_224.tflite]"),
])
def test_a_flag_that_ran_with_another_value_is_refused(flag, asked, echo):
    with pytest.raises(LatprofError) as failure:
        parse_benchmark_output(NOBUO_V2_PROFILED, {**NOBUO_FLAGS, flag: asked})
    message = str(failure.value)
    assert format_flags({flag: asked})[0] in message and echo in message and "\n" not in message


def test_echoes_are_compared_by_value():
    assert parse_benchmark_output(NOBUO_V2_PROFILED, {**NOBUO_FLAGS, "num_threads": "4", "enable_op_profiling": "true"})
    assert parse_benchmark_output(YUENSHOME_NEXT_RUN.split("Loaded model")[0] + YUENSHOME_OLD_NOSTATS,
                                  {"min_secs": 1.0, "warmup_min_secs": 0.5, "run_delay": -1, "warmup_runs": 4})


def test_a_passed_flag_without_its_echo_is_refused():
    with pytest.raises(LatprofError, match=r"did not echo --num_runs=50"):
        parse_benchmark_output(TF61946_V2_INFO, {"graph": "./mobilenet_v1_1.0_224_quant.tflite", "num_runs": 50})
    with pytest.raises(LatprofError, match="echoes no parameters"):
        parse_benchmark_output(YUENSHOME_OLD_NOSTATS, {"num_threads": 2})
    with pytest.raises(LatprofError, match="cannot check --frobnicate"):
        parse_benchmark_output(TF61946_V2_INFO, {"frobnicate": True})


def test_unconsumed_flags_are_refused():
    with pytest.raises(LatprofError, match=r"ignored flags it does not know \(--graph test\)"):
        parse_benchmark_output(TF47175_UNCONSUMED)


# --- Failures, garbage and truncation: never a latency of 0 --------------------------------------

def test_error_lines_of_the_tool_are_reported():
    failed_after_timings = LOGCAT_CURRENT + "07-14 13:14:56.522 22838 22838 E tflite  : Benchmarking failed.\n"
    with pytest.raises(LatprofError, match=r"benchmark_model failed: Benchmarking failed\.$"):
        parse_benchmark_output(failed_after_timings)
    runtime_error = TF61946_V2_INFO.replace("INFO: Loaded model", "ERROR: Node number 3 (CONV_2D) failed to invoke.\n"
                                            "INFO: Loaded model")
    with pytest.raises(LatprofError, match=r"failed: Node number 3 \(CONV_2D\) failed to invoke\.$"):
        parse_benchmark_output(runtime_error)
    with pytest.raises(LatprofError, match="CANNOT LINK EXECUTABLE"):
        parse_benchmark_output('CANNOT LINK EXECUTABLE "./benchmark_model": library "libc++_shared.so" not found\n')


@pytest.mark.parametrize(("text", "message"), [
    ("", "printed nothing"),
    ("\n \n", "printed nothing"),
    ("Segfault? no: just some text\nwithout any timing\n", "no inference timing recognised"),
    (YUENSHOME_OLD_NOSTATS + YUENSHOME_NEXT_RUN, "more than one run"),
    (YUENSHOME_NEXT_RUN, "truncated"),
    (XNNPACK999_CUT, "truncated: the op-profiling report stops after initialization"),
    (LOGCAT_CURRENT.replace("avg=145528 std=13583", "avg=14552.8 std=13583"), "inconsistent"),
    (TF61946_V2_INFO.replace("count=50 first=121183 curr=115199 min=111222 max=121324 avg=116066 std=1906",
                             "count=0").replace("Inference (avg): 116066", "Inference (avg): nan"), "timed 0 inference runs"),
    (YUENSHOME_OLD_NOSTATS.replace("count=15 first=66753 curr=66800 min=66699 max=66838 avg=66767.6 std=39\n", "")
     .replace("no stats: 66767.6", "no stats: 0"), "truncated: a timed phase has no statistics line"),
    (ANDROID_APP_OLD.replace("80660.1", "0"), "summary inference avg is 0 us"),
    (ANDROID_APP_OLD.replace("80660.1", "-nan"), "positive and"),
    (ANDROID_APP_OLD.replace("80660.1", "inf"), "positive and"),
])
def test_bad_output_raises_one_line_error(text, message):
    with pytest.raises(LatprofError, match=message) as failure:
        parse_benchmark_output(text)
    assert "\n" not in str(failure.value)


def test_zero_latency_in_every_field_is_refused():
    zero = TF61946_V2_INFO.replace("count=50 first=121183 curr=115199 min=111222 max=121324 avg=116066 std=1906",
                                   "count=50 curr=0(all same)").replace("Inference (avg): 116066", "Inference (avg): 0")
    with pytest.raises(LatprofError, match="'s inference avg is 0 us"):
        parse_benchmark_output(zero)


def test_output_cut_anywhere_never_yields_a_latency():
    """Cut the real profiled output at 300 places: every cut before the end of its op-profiling
    report (the last line) must raise."""
    end = len(NOBUO_V2_PROFILED) - 1
    for cut in [*np.linspace(0, end - 1, 300).astype(int), end]:
        if cut < end:
            with pytest.raises(LatprofError):
                parse_benchmark_output(NOBUO_V2_PROFILED[:cut], NOBUO_FLAGS)
        else:
            assert parse_benchmark_output(NOBUO_V2_PROFILED[:cut], NOBUO_FLAGS).latency_us == 2.95034e+06


# --- The loopback phone's stand-in binary, run directly ------------------------------------------

SPEC = OpSpec("CONV_2D", ((16, 16, 32),), (16, 16, 32), kernel=3, stride=1, padding="SAME")
FAST = {"num_threads": 1, "num_runs": 30, "min_secs": 0.0, "warmup_runs": 5, "warmup_min_secs": 0.0}


@pytest.fixture(scope="module")
def tiny_model(model_cache: ModelCache) -> Path:
    """A one-op .tflite (a 3x3 convolution taking about a tenth of a millisecond)."""
    assert ensure_models([SPEC], "float32", model_cache, workers=1) == {}
    return model_cache.path(SPEC, "float32")


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    return install(tmp_path_factory.mktemp("phone") / "benchmark_model")


def run_stand_in(binary: Path, args: list[str], fmt: str = "current", **env: str) -> subprocess.CompletedProcess:
    """The stand-in as adb runs a binary: stdout and stderr in one stream."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BENCHMARK_MODEL_")}
    environment.update(BENCHMARK_MODEL_FORMAT=fmt, **env)
    return subprocess.run([str(binary), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=environment, timeout=60)


def test_install_writes_an_executable_with_the_given_python_and_the_latprof_it_needs(tmp_path):
    binary = install(tmp_path / "bin" / "benchmark_model", python="/usr/bin/python3-phone")
    assert binary.read_text().splitlines()[0] == "#!/usr/bin/python3-phone"
    assert os.access(binary, os.X_OK)
    # The phone has no latprof: the modules the stand-in runs travel inside it, by source.
    bundle = latprof_sources()
    assert {"latprof", *BUNDLED} <= set(bundle) and f"LATPROF_BUNDLE: dict[str, str] = {bundle!r}" in binary.read_text()
    assert install(tmp_path / "again").read_bytes() != binary.read_bytes()  # another python, same bundle
    assert install(tmp_path / "a").read_bytes() == install(tmp_path / "b").read_bytes()  # one content, one hash


@pytest.mark.parametrize("fmt", FORMATS)
def test_stand_in_output_parses_in_every_format(fmt, stand_in, tiny_model):
    flags = {"graph": str(tiny_model), **FAST, "use_xnnpack": True}
    done = run_stand_in(stand_in, format_flags(flags), fmt)
    assert done.returncode == 0, done.stdout
    run = parse_benchmark_output(done.stdout, flags)
    assert run.generation == {"all-same": "current"}.get(fmt, fmt)
    assert run.inference is not None and run.inference.count >= 30 and run.warmup.count >= 5
    precise_median = run.generation == "current" and run.inference.median >= MEDIAN_MIN_US
    assert run.latency_us > 0 and run.statistic == ("inference median" if precise_median else "inference avg")
    if fmt == "all-same":
        assert run.inference.min == run.inference.max and run.inference.std == 0
        assert "(all same)" in done.stdout


@pytest.mark.parametrize("fmt", ["current", "v2", "old"])
def test_stand_in_op_profiling(fmt, stand_in, tiny_model):
    # The builtin kernels (no XNNPACK): one row per op, each run split over them.
    flags = {"graph": str(tiny_model), **FAST, "use_xnnpack": False, "enable_op_profiling": True}
    done = run_stand_in(stand_in, format_flags(flags), fmt)
    run = parse_benchmark_output(done.stdout, flags)
    assert [op.node_type for op in run.op_profile] == ["CONV_2D"]
    assert run.op_profile[0].percent == 100.0 and (run.op_profile[0].start_ms is None) == (fmt == "current")
    assert run.op_profile[0].avg_ms * 1000 == pytest.approx(run.inference.avg, rel=0.02, abs=2)
    assert network_operators(run) == [("CONV_2D", run.op_profile[0].avg_ms * 1000)]

    # XNNPACK: its own operator, timed by LiteRT's profiler inside the timed runs (builds since
    # TensorFlow Lite 2.10); the delegate's node only in older ones.
    flags = {**flags, "use_xnnpack": True}
    run = parse_benchmark_output(run_stand_in(stand_in, format_flags(flags), fmt).stdout, flags)
    assert run.op_profile[0].node_type == "TfLiteXNNPackDelegate"
    if fmt == "old":
        assert len(run.op_profile) == 1 and not run.delegate_profile
        with pytest.raises(LatprofError, match="no per-operator times"):
            network_operators(run)
        return
    assert (len(run.op_profile), len(run.delegate_profile)) == ((2, 0) if fmt == "current" else (1, 1))
    ((operator, us),) = network_operators(run)
    assert operator.startswith("Convolution (NHWC, F32)")
    # Measured inside each run, so less than a run takes (whole microseconds: one of rounding).
    assert 0 < us <= run.inference.avg + 1


def test_stand_in_brings_its_own_latprof(stand_in, tiny_model, tmp_path):
    """Where latprof cannot be imported (on the phone), the stand-in's op profiling still runs."""
    fake = tmp_path / "path" / "latprof"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('latprof is not on the phone')\n")
    flags = {"graph": str(tiny_model), **FAST, "use_xnnpack": True, "enable_op_profiling": True}
    done = run_stand_in(stand_in, format_flags(flags), PYTHONPATH=str(fake.parent))
    assert done.returncode == 0, done.stdout
    assert network_operators(parse_benchmark_output(done.stdout, flags))[0][0].startswith("Convolution")


def test_stand_in_unknown_flag_runs_with_defaults_and_is_refused(stand_in, tiny_model):
    flags = {"graph": str(tiny_model), **FAST}
    done = run_stand_in(stand_in, [*format_flags(flags), "--warm_ups=30"])
    assert done.returncode == 0 and "WARN: Unconsumed cmdline flags: --warm_ups=30" in done.stdout
    with pytest.raises(LatprofError, match=r"\(--warm_ups=30\)"):
        parse_benchmark_output(done.stdout, flags)


@pytest.mark.parametrize(("args", "content", "message"), [
    (["--num_threads=1"], None, "Please specify the name of your TF Lite input file with --graph"),
    (["--graph=GRAPH"], None, "Could not open '.*missing.tflite'"),
    (["--graph=GRAPH"], b"not a flatbuffer" * 8, "The model is not a valid Flatbuffer buffer"),
    (["--graph=GRAPH"], b"", "mmap of size 0 requested"),
    (["--graph=GRAPH", "--num_runs=many"], None, "Failed to parse flag 'num_runs' against argv '--num_runs=many'"),
    (["--help"], None, "usage: "),
])
def test_stand_in_failures_exit_1_with_the_real_error_text(args, content, message, stand_in, tmp_path):
    graph = tmp_path / "missing.tflite"
    if content is not None:
        graph.write_bytes(content)
    done = run_stand_in(stand_in, [arg.replace("GRAPH", str(graph)) for arg in args])
    assert done.returncode == 1 and done.stdout.rstrip().endswith("ERROR: Benchmarking failed.")
    with pytest.raises(LatprofError, match=f"benchmark_model failed: {message}"):
        parse_benchmark_output(done.stdout)


def test_stand_in_logs_each_call(stand_in, tiny_model, tmp_path):
    calls = tmp_path / "calls.log"
    for _ in range(2):
        run_stand_in(stand_in, format_flags({"graph": str(tiny_model), **FAST, "num_runs": 1}),
                     BENCHMARK_MODEL_CALL_LOG=str(calls))
    assert calls.read_text() == f"{tiny_model}\n" * 2


def test_stand_in_honours_min_and_max_secs(stand_in, tiny_model):
    slow = run_stand_in(stand_in, format_flags({"graph": str(tiny_model), **FAST, "num_runs": 1, "min_secs": 0.3}))
    fast = run_stand_in(stand_in, format_flags({"graph": str(tiny_model), **FAST, "num_runs": 100000, "max_secs": 0.2}))
    slow_run, fast_run = parse_benchmark_output(slow.stdout), parse_benchmark_output(fast.stdout)
    # num_runs=1 alone stops after one run; min_secs kept it going.
    assert slow_run.inference.count > 1
    assert 1 < fast_run.inference.count < 100000  # stopped by max_secs


def imported_packages(source: str) -> set[str]:
    tree = ast.parse(source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return imported | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                       and node.level == 0}


def test_stand_in_imports_only_what_the_phone_has():
    """On the fake phone only the Python installation is visible: no TensorFlow, and latprof only
    as the modules the stand-in carries (which themselves import nothing else)."""
    phone = set(sys.stdlib_module_names) | {"numpy", "ai_edge_litert", "latprof"}
    assert imported_packages((Path(__file__).parent / "loopback" / "benchmark_model.py").read_text()) <= phone
    for source in latprof_sources().values():
        assert imported_packages(source) <= phone


# --- Op tables as operators, in run order, for the attribution --------------------------------------

# What precedes an op-profiling report: one timed phase of a current build with op profiling on.
PROFILED_HEAD = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Graph: [net.tflite]
INFO: Enable op profiling: [1]
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=1210 curr=1152 min=1112 max=1213 avg=1160.66 std=19 p5=1120 median=1158 p95=1200

INFO: Inference timings in us: Init: 530, First inference: 1240, Warmup (avg): 1172.25, Inference (avg): 1160.66
"""
DELEGATE_NODE = ("TfLiteXNNPackDelegate", "[logits]:3", [100.0])
# XNNPACK's operators (run index, name, us) and an op the interpreter ran after the delegate.
XNNPACK_OPERATORS = [(0, "Convolution (NHWC, F32) IGEMM", 60.0), (1, "Mean (ND) Reduce2", 10.0),
                     (2, "Fully Connected (NC, F32) GEMM", 30.0)]
INTERPRETER_OP = ("SOFTMAX", "[probs]:4", [5.0])


def profiled_output(rows, internal=(), fmt="current") -> str:
    """An output with the regular runs' op-profiling report, laid out as profile_summarizer.cc and
    StatsCalculator write it (by the stand-in's writer: no public capture of XNNPACK's operator rows
    was found)."""
    return PROFILED_HEAD + profile_report("Operator-wise Profiling Info for Regular Benchmark Runs:", list(rows), fmt,
                                          list(internal))


def xnnpack_rows(order=XNNPACK_OPERATORS, node_type=None):
    return [(node_type or name, f"Delegate/{name}:{index}", [us]) for index, name, us in order]


@pytest.mark.parametrize("layout", ["regular rows", "delegate internal"])
def test_xnnpack_operators_replace_their_delegate_node_in_run_order(layout):
    """Current builds list XNNPACK's operators after the delegate's row (node type the operator);
    TensorFlow Lite 2.10-2.12 in a "Delegate internal:" report (node type DelegateOpInvoke).  Either
    way an operator's index is its place in XNNPACK's run: builds that sort the table by start time
    list them out of order (here by time, as made-up starts would)."""
    shuffled = sorted(XNNPACK_OPERATORS, key=lambda operator: -operator[2])
    if layout == "regular rows":
        text = profiled_output([DELEGATE_NODE, *xnnpack_rows(shuffled), INTERPRETER_OP])
    else:
        text = profiled_output([DELEGATE_NODE, INTERPRETER_OP], xnnpack_rows(shuffled, "DelegateOpInvoke"), fmt="v2")
    run = parse_benchmark_output(text, {"graph": "net.tflite", "enable_op_profiling": True})
    assert len(run.delegate_profile) == (3 if layout == "delegate internal" else 0)
    operators = network_operators(run)
    assert operators == [(name, us) for _, name, us in XNNPACK_OPERATORS] + [("SOFTMAX", 5.0)]
    spec = OpSpec("ADD", ((4, 4, 8), (4, 4, 8)), (4, 4, 8))
    ops = [OpSpec(op, spec.inputs, spec.output) for op in ("CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX")]
    assert attribute(ops, operators) == [60.0, 10.0, 30.0, 5.0]


def test_builtin_kernels_are_their_own_operators():
    """Without XNNPACK every op is a row of the interpreter's, named by its type."""
    operators = network_operators(parse_benchmark_output(NOBUO_V2_PROFILED, NOBUO_FLAGS))
    assert len(operators) == 31 and operators[0] == ("CONV_2D", 60957.0) and operators[-1] == ("SOFTMAX", 233.0)


@pytest.mark.parametrize("node", ["TfLiteXNNPackDelegate", "TfLiteGpuDelegateV2"])
def test_a_delegate_that_reports_only_its_node_is_a_clear_error(node):
    """XNNPACK before TensorFlow Lite 2.10, and the GPU delegate always, show one row for the graph."""
    run = parse_benchmark_output(profiled_output([(node, "[logits]:3", [100.0]), INTERPRETER_OP]))
    with pytest.raises(LatprofError, match=f"1 {node} node and reported no per-operator times") as failure:
        network_operators(run)
    assert "--method isolated" in str(failure.value) and "\n" not in str(failure.value)


def test_operators_of_several_delegate_partitions_are_refused():
    """Each partition numbers its operators from 0: their rows cannot be told apart."""
    second = ("TfLiteXNNPackDelegate", "[features]:1", [50.0])
    run = parse_benchmark_output(profiled_output([DELEGATE_NODE, INTERPRETER_OP, second, *xnnpack_rows()]))
    with pytest.raises(LatprofError, match="2 delegate nodes"):
        network_operators(run)


def test_short_latencies_use_the_mean_not_the_rounded_median():
    """Statistics lines print whole microseconds; a 3 us op's median of 3 may be 20% off."""
    text = ("INFO: Graph: [m.tflite]\nINFO: count=100 first=9 curr=3 min=2 max=9 avg=3.41 std=1 p5=2 median=3 p95=4\n"
            "INFO: Inference timings in us: Init: 100, First inference: 9, Warmup (avg): 3.5, Inference (avg): 3.41\n")
    run = parse_benchmark_output(text, {"graph": "m.tflite"})
    assert run.statistic == "inference avg" and run.latency_us == 3.41


# --- GPU and NNAPI delegates: real captures (tests/captures/README.md says where each is from) ---

CAPTURES = Path(__file__).with_name("captures")
GPU_COMPLETE = (CAPTURES / "gpu_complete_tf2_android.txt").read_text()
GPU_COMPLETE_FLAGS = {"num_threads": 4, "num_runs": 50, "warmup_runs": 1, "use_gpu": True}
COMPLETE_LINE = "Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.\n"


def test_a_gpu_run_that_took_the_whole_model_is_a_timing_with_the_api_it_ran_on():
    run = parse_benchmark_output(GPU_COMPLETE, GPU_COMPLETE_FLAGS)
    assert (run.generation, run.latency_us, run.delegate_backend) == ("v2", 119375.0, "GPU: OpenCL")


@pytest.mark.parametrize("name, flags, message", [
    ("gpu_partial_logcat.txt", {"use_gpu": True, "use_xnnpack": False},
     r"GPU delegate runs only part of this model \(the rest on the CPU; ops it does not take: UNPACK\)"),
    ("gpu_unsupported_ops_native.txt", {"use_gpu": True},
     r"only part of this model \(97 ops on the GPU, 200 on the CPU; ops it does not take: ARG_MAX, CAST, .*, UNPACK\)"),
    ("gpu_none_mobilebert.txt", {"use_gpu": True}, "GPU delegate runs none of this model, the CPU would run all of it"),
    ("nnapi_none_logcat.txt", {"use_nnapi": True, "use_xnnpack": False}, "NNAPI delegate runs none of this model"),
    ("xnnpack_rejected.txt", {"use_xnnpack": True}, r"rejected the XNNPACK delegate \(Failed to apply XNNPACK delegate\.\)"),
])
def test_a_delegate_that_was_rejected_or_left_ops_to_the_cpu_is_refused(name, flags, message):
    """Whatever else the output holds (errors of the runtime, no timings yet), what the delegate did
    is the reason given, with what to do."""
    with pytest.raises(DelegateRefused, match=message) as refused:
        parse_benchmark_output((CAPTURES / name).read_text(), flags)
    assert "\n" not in str(refused.value) and ("--delegate" in str(refused.value))


def test_a_gpu_run_counts_only_when_the_tool_says_the_delegate_took_everything():
    """A build too old to say so, or a log with the line missing, cannot be trusted with a GPU time;
    the same text is an ordinary run when no GPU was asked for."""
    without = GPU_COMPLETE.replace(COMPLETE_LINE, "")
    with pytest.raises(DelegateRefused, match="never said that the GPU delegate runs the whole model"):
        parse_benchmark_output(without, GPU_COMPLETE_FLAGS)
    assert parse_benchmark_output(without).delegate_backend is None
    # With two delegates asked, each must take the whole model: here NNAPI, applied after the GPU, took nothing.
    with pytest.raises(DelegateRefused, match="NNAPI delegate runs none"):
        parse_benchmark_output(GPU_COMPLETE + (CAPTURES / "nnapi_none_logcat.txt").read_text(),
                               {**GPU_COMPLETE_FLAGS, "use_nnapi": True})


@pytest.mark.parametrize("delegate, backend", [("gpu", "GPU: OpenCL"), ("nnapi", "NNAPI: loopback-npu,nnapi-reference")])
def test_stand_in_delegates_log_what_the_real_tool_logs(delegate, backend, stand_in, tiny_model):
    """The loopback phone's accelerators: all of a model, none of it (the ops the test says they do
    not take) or a delegate that fails to apply, each read as from the real tool."""
    flags = {"graph": str(tiny_model), **FAST, "use_xnnpack": False, f"use_{delegate}": True}
    run = parse_benchmark_output(run_stand_in(stand_in, format_flags(flags)).stdout, flags)
    assert run.latency_us > 0 and run.delegate_backend == backend
    name = delegate.upper()
    with pytest.raises(DelegateRefused, match=f"{name} delegate runs none of this model.*: CONV_2D"):
        unsupported = run_stand_in(stand_in, format_flags(flags), BENCHMARK_MODEL_UNSUPPORTED_OPS="CONV_2D")
        parse_benchmark_output(unsupported.stdout, flags)
    failed = run_stand_in(stand_in, format_flags(flags), BENCHMARK_MODEL_DELEGATE_FAILS="1")
    assert failed.returncode == 1 and failed.stdout.rstrip().endswith("Benchmarking failed.")
    with pytest.raises(DelegateRefused, match=f"rejected the {name} delegate"):
        refuse_delegate_failures(failed.stdout, flags)


def test_stand_in_gpu_op_profile_is_one_delegate_node(stand_in, tiny_model):
    """As tensorflow#53138 shows: the GPU delegate's whole graph is one TfLiteGpuDelegateV2 row."""
    flags = {"graph": str(tiny_model), **FAST, "use_xnnpack": False, "use_gpu": True, "enable_op_profiling": True}
    run = parse_benchmark_output(run_stand_in(stand_in, format_flags(flags)).stdout, flags)
    assert [row.node_type for row in run.op_profile] == ["TfLiteGpuDelegateV2"]
    with pytest.raises(LatprofError, match="1 TfLiteGpuDelegateV2 node and reported no per-operator times"):
        network_operators(run)
