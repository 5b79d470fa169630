package dev.offmm.bench.scale;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYSeries;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The plots: written, y from zero, dashed linear references capped at the CPUs, kernel and floor, machine in the title. */
class PlotTest {
    private static final Machine MACHINE = new Machine(4, "Test CPU 9000", "6.1.0-test", Instant.parse("2026-12-02T06:30:00Z"));

    private static Summary point(Target t, int threads, double opsPerSecond) {
        return new Summary(Workload.PF1, t, threads,
                List.of(new Result(Workload.PF1, t, threads, opsPerSecond, (long) opsPerSecond, 0, 0, 0, 0)));
    }

    private static List<Summary> points() {
        List<Summary> p = new ArrayList<>();
        for (int n : new int[] {1, 2, 8}) {
            p.add(point(Target.parse("SINGLE"), n, 1e6 * Math.min(n, 2)));
            p.add(point(Target.parse("SPLIT_PTE_PMD"), n, 3e6 * Math.min(n, 4)));
            p.add(point(Target.KERNEL, n, 1e6 * n));
            p.add(point(Target.ZERO, n, 8e6 * n));
        }
        return p;
    }

    @Test
    void chartStartsAtZeroWithReferencesKernelFloorAndMachine() {
        XYChart chart = Plot.chart(Workload.PF1, points(), MACHINE);
        assertEquals(0.0, chart.getStyler().getYAxisMin());
        String title = chart.getTitle();
        assertTrue(title.contains("4 CPUs") && title.contains("Test CPU 9000") && title.contains("6.1.0-test")
                && title.contains("2026-12-02 06:30 UTC"), title);
        var series = chart.getSeriesMap();
        assertTrue(series.containsKey("kernel (host)") && series.containsKey("zero (zeroing floor)"), series.keySet()::toString);
        assertFalse(series.containsKey("kernel (host) linear") || series.containsKey("zero linear"), "references only for modes");
        XYSeries ref = series.get("SPLIT_PTE_PMD linear");
        // 3 M at 1 thread: x threads up to the 4 CPUs, flat beyond (the CPU count added as a knee).
        assertArrayEquals(new double[] {1, 2, 4, 8}, ref.getXData());
        assertArrayEquals(new double[] {3, 6, 12, 12}, ref.getYData(), 1e-9);
        assertFalse(ref.isShowInLegend());
        XYSeries line = series.get("SPLIT_PTE_PMD");
        assertEquals(line.getLineColor(), ref.getLineColor(), "a reference has its mode's colour");
        assertTrue(ref.getLineStyle().getDashArray() != null, "the reference is dashed");
        assertTrue(line.getLineStyle() == null || line.getLineStyle().getDashArray() == null, "the measured line is solid");
        assertFalse(line.getLineColor().equals(series.get("SINGLE").getLineColor()));
    }

    @Test
    void writesOnePngPerWorkload(@TempDir Path dir) throws IOException {
        List<Summary> p = new ArrayList<>(points());
        p.add(new Summary(Workload.THP, Target.parse("SINGLE"), 1,
                List.of(new Result(Workload.THP, Target.parse("SINGLE"), 1, 900, 900, 0, 0, 0, 0))));
        List<Path> files = Plot.write(p, dir.resolve("out"), MACHINE);
        assertEquals(List.of(dir.resolve("out/scale-pf1.png"), dir.resolve("out/scale-thp.png")), files);
        for (Path f : files) {
            assertTrue(Files.size(f) > 1000, f::toString);
            BufferedImage img = ImageIO.read(f.toFile());
            assertEquals(Plot.WIDTH, img.getWidth());
            assertEquals(Plot.HEIGHT, img.getHeight());
        }
    }

    @Test
    void cpuModelFromCpuinfo(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("cpuinfo");
        Files.writeString(f, "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  7B13 64-Core Processor\n");
        assertEquals("AMD EPYC 7B13 64-Core Processor", Machine.cpuModel(f));
        assertEquals(System.getProperty("os.arch"), Machine.cpuModel(dir.resolve("missing")));
    }
}
