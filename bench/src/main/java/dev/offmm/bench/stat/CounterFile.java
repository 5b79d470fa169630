package dev.offmm.bench.stat;

import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Layout of a counters file: a 128-byte header, then the Agrona values buffer, then its
 * metadata buffer.
 *
 * <pre>
 *   0       8      16           24          28            128          128 + values
 *   +-------+------+------------+-----------+-------------+------------+-------------+
 *   | magic | pid  | start (ms) | values len| (reserved)  | values     | metadata    |
 *   +-------+------+------------+-----------+-------------+------------+-------------+
 * </pre>
 * The writer fills the header before it allocates any counter; a reader checks the magic.
 */
final class CounterFile {
    static final long MAGIC = 0x6f66666d6d535431L;
    static final int HEADER = 128;
    static final int MAX_COUNTERS = 64;
    static final int VALUES_LENGTH = MAX_COUNTERS * 128;
    static final int METADATA_LENGTH = MAX_COUNTERS * 512;
    static final int FILE_LENGTH = HEADER + VALUES_LENGTH + METADATA_LENGTH;

    final MappedByteBuffer mapped;
    final UnsafeBuffer header;
    final UnsafeBuffer values;
    final UnsafeBuffer metadata;

    private CounterFile(MappedByteBuffer mapped) {
        this.mapped = mapped;
        this.header = new UnsafeBuffer(mapped, 0, HEADER);
        this.values = new UnsafeBuffer(mapped, HEADER, VALUES_LENGTH);
        this.metadata = new UnsafeBuffer(mapped, HEADER + VALUES_LENGTH, METADATA_LENGTH);
    }

    /** Where running processes put their counter files. */
    static Path directory() {
        return Path.of(System.getProperty("java.io.tmpdir"), "offmm-stat");
    }

    static CounterFile create(Path file) throws IOException {
        Files.createDirectories(file.getParent());
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            CounterFile f = new CounterFile(ch.map(FileChannel.MapMode.READ_WRITE, 0, FILE_LENGTH));
            f.header.putLong(8, ProcessHandle.current().pid());
            f.header.putLong(16, System.currentTimeMillis());
            f.header.putInt(24, VALUES_LENGTH);
            f.header.putLongRelease(0, MAGIC);
            return f;
        }
    }

    static CounterFile open(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            if (ch.size() < FILE_LENGTH) {
                throw new IOException(file + " is not an offmm counters file (size " + ch.size() + ")");
            }
            CounterFile f = new CounterFile(ch.map(FileChannel.MapMode.READ_ONLY, 0, FILE_LENGTH));
            if (f.header.getLongAcquire(0) != MAGIC) {
                throw new IOException(file + " is not an offmm counters file (bad magic)");
            }
            return f;
        }
    }

    long pid() {
        return header.getLong(8);
    }
}
