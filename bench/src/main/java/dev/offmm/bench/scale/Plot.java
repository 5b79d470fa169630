package dev.offmm.bench.scale;

import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.XYStyler;
import org.knowm.xchart.style.markers.SeriesMarkers;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * PNG plots of throughput against threads, one chart per workload, to be read at a glance: one
 * solid line per target (medians), the y axis from zero, each offmm mode's linear scaling as a
 * dashed line of its colour (its 1-thread median x threads, up to the CPUs: past them no loop can
 * scale), the host kernel (black) and the zeroing floor (grey) on the same chart, and the
 * machine and the date of the run under the title.
 */
final class Plot {
    static final int WIDTH = 960;
    static final int HEIGHT = 600;
    /** Height of the band above the chart that holds the workload's title line. */
    private static final int BAND = 26;
    /** Okabe-Ito: told apart with every common colour-vision deficiency. */
    private static final Color[] MODES = {
        new Color(0x0072B2), new Color(0xE69F00), new Color(0x009E73), new Color(0xD55E00), new Color(0xCC79A7),
        new Color(0x56B4E9), new Color(0x8C564B), new Color(0xBCBD22),
    };
    private static final Color KERNEL = new Color(0x222222);
    private static final Color FLOOR = new Color(0x999999);

    private Plot() {
    }

    /** Writes {@code scale-<workload>.png} into {@code dir} for every workload in {@code results}. */
    static List<Path> write(List<Summary> results, Path dir, Machine machine) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Files.createDirectories(dir);
        Map<Workload, List<Summary>> byWorkload = new LinkedHashMap<>();
        for (Summary r : results) {
            byWorkload.computeIfAbsent(r.workload(), k -> new ArrayList<>()).add(r);
        }
        List<Path> files = new ArrayList<>();
        for (Map.Entry<Workload, List<Summary>> e : byWorkload.entrySet()) {
            Path file = dir.resolve("scale-" + e.getKey().cliName() + ".png");
            ImageIO.write(render(e.getKey(), chart(e.getKey(), e.getValue(), machine)), "png", file.toFile());
            files.add(file);
        }
        return files;
    }

    /** The chart of one workload's points (any order; one series per target, in first-seen order). */
    static XYChart chart(Workload w, List<Summary> points, Machine machine) {
        Map<String, List<Summary>> byTarget = new LinkedHashMap<>();
        for (Summary s : points) {
            byTarget.computeIfAbsent(s.target().name(), k -> new ArrayList<>()).add(s);
        }
        boolean huge = w.huge();
        double unit = huge ? 1e3 : 1e6;
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT - BAND).title(machine.describe())
                .xAxisTitle("threads   (dashed: each mode's 1-thread rate x threads, up to the " + machine.cpus()
                        + " CPUs: its linear scaling)")
                .yAxisTitle(huge ? "2 MiB faults per second (k)" : "page faults per second (M)").build();
        XYStyler st = chart.getStyler();
        st.setChartTitleFont(st.getChartTitleFont().deriveFont(Font.PLAIN, 12f));
        st.setYAxisMin(0.0);
        st.setxAxisTickLabelsFormattingFunction(x -> x == Math.rint(x) ? Long.toString(Math.round(x)) : "");
        st.setLegendBackgroundColor(Color.WHITE);
        st.setPlotGridLinesColor(new Color(0xE4E4E4));
        st.setChartBackgroundColor(Color.WHITE);
        int mode = 0;
        for (Map.Entry<String, List<Summary>> s : byTarget.entrySet()) {
            List<Summary> pts = new ArrayList<>(s.getValue());
            pts.sort((a, b) -> Integer.compare(a.threads(), b.threads()));
            Target t = pts.getFirst().target();
            double[] x = new double[pts.size()];
            double[] y = new double[pts.size()];
            for (int i = 0; i < pts.size(); i++) {
                x[i] = pts.get(i).threads();
                y[i] = pts.get(i).median() / unit;
            }
            Color c = t.isKernel() ? KERNEL : t.isZero() ? FLOOR : MODES[mode++ % MODES.length];
            String name = t.isKernel() ? "kernel (host)"
                    : t.isZero() ? (huge ? "zero-2m" : "zero") + " (zeroing floor)" : s.getKey();
            XYSeries line = chart.addSeries(name, x, y);
            line.setLineColor(c);
            line.setMarkerColor(c);
            line.setLineWidth(2f);
            line.setMarker(t.isKernel() ? SeriesMarkers.SQUARE : t.isZero() ? SeriesMarkers.DIAMOND : SeriesMarkers.CIRCLE);
            if (t.isOffmm() && pts.getFirst().threads() == 1 && pts.size() > 1) {
                addLinear(chart, s.getKey(), c, pts.getFirst().median() / unit, x, machine.cpus());
            }
        }
        return chart;
    }

    /** {@code one x min(threads, cpus)} at the measured thread counts and at the CPU count between them. */
    private static void addLinear(XYChart chart, String name, Color c, double one, double[] threads, int cpus) {
        TreeSet<Double> xs = new TreeSet<>();
        for (double t : threads) {
            xs.add(t);
        }
        if (cpus > xs.first() && cpus < xs.last()) {
            xs.add((double) cpus);
        }
        double[] x = new double[xs.size()];
        double[] y = new double[xs.size()];
        int i = 0;
        for (double t : xs) {
            x[i] = t;
            y[i++] = one * Math.min(t, cpus);
        }
        XYSeries ref = chart.addSeries(name + " linear", x, y);
        ref.setLineColor(c);
        ref.setLineStyle(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_ROUND, 10f,
                new float[] {7f, 5f}, 0f));
        ref.setMarker(SeriesMarkers.NONE);
        ref.setShowInLegend(false);
    }

    /** The chart under a band with the workload's name and loop, as one image. */
    static BufferedImage render(Workload w, XYChart chart) {
        BufferedImage img = new BufferedImage(WIDTH, HEIGHT, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, WIDTH, HEIGHT);
            g.setColor(Color.BLACK);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
            String title = "offmm " + w.cliName() + ": " + w.description();
            int tw = g.getFontMetrics().stringWidth(title);
            g.drawString(title, Math.max(4, (WIDTH - tw) / 2), BAND - 4);
            g.translate(0, BAND);
            chart.paint(g, WIDTH, HEIGHT - BAND);
        } finally {
            g.dispose();
        }
        return img;
    }
}
