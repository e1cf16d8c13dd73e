# The inference study's plot (griffin_report --study runs it):
#   gnuplot -e "data='docs/img/inference_study.dat'; out='docs/img/inference_study.svg'" bench/inference_study.gp
# Blocks of the data file: 0-2 decode against length at batch 1 (MQA, Hawk, Griffin), 3-5 against batch.
if (!exists("data")) data = 'docs/img/inference_study.dat'
if (!exists("out")) out = 'docs/img/inference_study.svg'
set terminal svg size 1350,420 dynamic enhanced font 'Helvetica,13' background rgb 'white'
set output out
set multiplot layout 1,3
set grid
set key top left
set logscale x 2
set format x "%.0f"
set style line 1 lc rgb '#d62728' lw 2 pt 7 ps 0.8
set style line 2 lc rgb '#1f77b4' lw 2 pt 5 ps 0.8
set style line 3 lc rgb '#2ca02c' lw 2 pt 9 ps 0.9

set title "Per-token decode latency (batch 1)"
set xlabel "tokens already in the state"
set ylabel "ms per token"
set yrange [0:*]
plot data index 0 using 1:2 with linespoints ls 1 title 'MQA', \
     data index 1 using 1:2 with linespoints ls 2 title 'Hawk', \
     data index 2 using 1:2 with linespoints ls 3 title 'Griffin'

set title "Time to generate L tokens (batch 1)"
set xlabel "L (tokens generated)"
set ylabel "seconds"
set yrange [0:*]
set key top left
plot data index 0 using 1:5 with linespoints ls 1 title 'MQA', \
     data index 1 using 1:5 with linespoints ls 2 title 'Hawk', \
     data index 2 using 1:5 with linespoints ls 3 title 'Griffin'

set title "Decode throughput against batch size"
set xlabel "batch size"
set ylabel "tokens/s"
set key top left
plot data index 3 using 1:3 with linespoints ls 1 title 'MQA', \
     data index 4 using 1:3 with linespoints ls 2 title 'Hawk', \
     data index 5 using 1:3 with linespoints ls 3 title 'Griffin'
unset multiplot
