// C++ workload: std::thread and futures, std::filesystem in the temp dir, iostreams, chrono.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

int main() {
    std::vector<std::future<long>> parts;
    for (long i = 0; i < 4; ++i)
        parts.push_back(std::async(std::launch::async, [i] { return i * 1000; }));
    long total = 0;
    for (auto &p : parts) total += p.get();
    std::cout << "async_total=" << total << "\n";

    std::vector<int> v(1000);
    std::iota(v.begin(), v.end(), 1);
    std::cout << "accumulate=" << std::accumulate(v.begin(), v.end(), 0L) << "\n";

    fs::path dir = fs::temp_directory_path() / "compat-cpp";
    fs::create_directories(dir / "a" / "b");
    std::ofstream(dir / "a" / "f.txt") << "hello";
    std::ifstream in(dir / "a" / "f.txt");
    std::string word;
    in >> word;
    std::cout << "fs_roundtrip=" << word << "\n";
    std::cout << "fs_removed=" << fs::remove_all(dir) << "\n";

    std::map<std::string, int> m{{"b", 2}, {"a", 1}};
    std::cout << "map_first=" << m.begin()->first << "\n";
    auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::cout << "chrono_ok=" << (std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(5)) << "\n";
    std::cout << "hardware_concurrency_positive=" << (std::thread::hardware_concurrency() > 0) << "\n";
    return 0;
}
