package dev.offmm.bench.scale;

import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** PNG plots of throughput against threads: one chart per workload, one line per target (medians). */
final class Plot {
    private Plot() {
    }

    static List<Path> write(List<Summary> results, Path dir) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Files.createDirectories(dir);
        Map<Workload, Map<String, List<Summary>>> byWorkload = new LinkedHashMap<>();
        for (Summary r : results) {
            byWorkload.computeIfAbsent(r.workload(), k -> new LinkedHashMap<>())
                    .computeIfAbsent(r.target().name(), k -> new ArrayList<>()).add(r);
        }
        List<Path> files = new ArrayList<>();
        for (Map.Entry<Workload, Map<String, List<Summary>>> e : byWorkload.entrySet()) {
            XYChart chart = new XYChartBuilder().width(900).height(560)
                    .title("offmm " + e.getKey().cliName() + ": " + e.getKey().description())
                    .xAxisTitle("threads").yAxisTitle("page faults per second (M)").build();
            chart.getStyler().setChartTitleFont(chart.getStyler().getChartTitleFont().deriveFont(12f));
            for (Map.Entry<String, List<Summary>> s : e.getValue().entrySet()) {
                List<Summary> points = s.getValue();
                double[] x = new double[points.size()];
                double[] y = new double[points.size()];
                for (int i = 0; i < points.size(); i++) {
                    x[i] = points.get(i).threads();
                    y[i] = points.get(i).median() / 1e6;
                }
                chart.addSeries(s.getKey(), x, y).setMarker(SeriesMarkers.CIRCLE);
            }
            Path file = dir.resolve("scale-" + e.getKey().cliName() + ".png");
            BitmapEncoder.saveBitmap(chart, file.toString(), BitmapEncoder.BitmapFormat.PNG);
            files.add(file);
        }
        return files;
    }
}
