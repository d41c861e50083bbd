// The seed's "Using Redis and Redis Queue RQ" section in corio: jobs go to a Redis-backed
// queue and run in the background on worker processes, which may be on other servers.
// RQ's first example, as Python:
//     q = Queue(connection=Redis())
//     job = q.enqueue(count_words_at_url, 'http://nvie.com')
//     ...                           # in a shell on any machine: $ rq worker
//     print(job.result)
// corio (the text is given, not fetched: examples stay off the network):
#include "jobs.hpp"
#include "redis_server.hpp"
#include "workers.hpp"

#include <corio/corio.hpp>
#include <corio/redis_pool.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main() {
    corio_example::redis_server redis; // Redis()
    corio_example::worker_group rq_worker(CORIO_REDIS_WORKER_EXAMPLE, redis.url(),
                                          1); // $ rq worker
    corio::redis_pool q(redis.url());         // Queue(...)

    auto job = q.apply_async(jobs::count_words, std::string("Flavio was here")); // enqueue
    std::printf("enqueued; the caller is free meanwhile\n");
    const std::size_t words = job.get(); // job.result
    std::printf("\"Flavio was here\" has %zu words\n", words);

    // Many jobs at once, spread over the workers of every machine serving the queue.
    const std::vector<std::string> texts = {"Using Redis and Redis Queue RQ",
                                            "distribute your tasks across different servers",
                                            "It is backed by Redis"};
    const std::vector<std::size_t> counts = q.map(jobs::count_words, texts);
    for (std::size_t i = 0; i < texts.size(); ++i) {
        std::printf("%zu words: %s\n", counts[i], texts[i].c_str());
    }
    return words == 3 && counts == std::vector<std::size_t>{6, 6, 5} ? 0 : 1;
}
