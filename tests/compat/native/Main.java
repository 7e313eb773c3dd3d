// Java workload: threads and an executor, collections and streams, files in the temp dir, the
// system properties a judge's program reads.
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.IntStream;

public class Main {
    public static void main(String[] args) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        List<Future<Integer>> parts = IntStream.range(0, 4)
            .mapToObj(i -> pool.submit(() -> i * i)).toList();
        int sum = 0;
        for (Future<Integer> f : parts) sum += f.get();
        pool.shutdown();
        System.out.println("executor_sum=" + sum);
        System.out.println("stream_sum=" + IntStream.rangeClosed(1, 100).sum());
        Path tmp = Files.createTempFile("compat", ".txt");
        Files.writeString(tmp, "hello java");
        System.out.println("file_roundtrip=" + Files.readString(tmp));
        Files.delete(tmp);
        System.out.println("processors_positive=" + (Runtime.getRuntime().availableProcessors() > 0));
        System.out.println("java_version_set=" + (System.getProperty("java.version") != null));
        StringBuilder sb = new StringBuilder();
        for (String w : new String[] {"b", "a", "c"}) sb.append(w);
        System.out.println("builder=" + sb.reverse());
    }
}
