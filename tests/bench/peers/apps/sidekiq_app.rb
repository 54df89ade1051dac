# Sidekiq 6.4 (Debian's ruby-sidekiq): `sidekiq -r ./sidekiq_app.rb -c 50 -q default`, with
# BasicFetch or, when BENCH_RELIABLE=1, GitLab's reliable fetch (ruby-gitlab-sidekiq-fetcher).
# Done = Sidekiq's own processed counter (Sidekiq::Stats). Sidekiq flushes it in its heartbeat,
# every 5 s; this benchmark beats every 0.1 s so the end of a drain is seen within 0.1 s.
# Run as a script it speaks the protocol of bench_common.py (enqueue, feed, check).
require "json"
require "sidekiq"
require "sidekiq/api"

REDIS_URL = ENV.fetch("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
Sidekiq.configure_client { |config| config.redis = { url: REDIS_URL } }
Sidekiq.configure_server do |config|
  config.redis = { url: REDIS_URL }
  if ENV["BENCH_RELIABLE"] == "1"
    require "sidekiq-reliable-fetch"
    Sidekiq::ReliableFetch.setup_reliable_fetch!(config)
  end
end
Sidekiq.logger.level = Logger::WARN # no line per job (no peer logs one in this benchmark)
# redis-rb 4.8 warns about Redis 5 API changes on every heartbeat; not about the outage.
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
if defined?(Sidekiq::Launcher)
  Sidekiq::Launcher.send(:remove_const, :BEAT_PAUSE)
  Sidekiq::Launcher.const_set(:BEAT_PAUSE, 0.1)
end

class Noop
  include Sidekiq::Worker
  def perform; end
end

class Recorded
  include Sidekiq::Worker
  def perform(job_id)
    path = ENV["BENCH_RECORD"]
    File.open(path, "a") { |f| f.write(format("%s %.6f\n", job_id, Time.now.to_f)) } if path
  end
end

def emit(obj)
  $stdout.puts(JSON.generate(obj))
  $stdout.flush
end

def monotonic
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

if __FILE__ == $PROGRAM_NAME
  command, *rest = ARGV
  case command
  when "enqueue"
    n = rest[0].to_i
    began = monotonic
    (0...n).each_slice(1000) { |s| Sidekiq::Client.push_bulk("class" => Noop, "args" => Array.new(s.size) { [] }) }
    emit(seconds: monotonic - began, count: n)
  when "feed"
    rate, seconds, out = rest[0].to_f, rest[1].to_f, rest[2]
    accepted = errors = 0
    began = monotonic
    File.open(out, "a") do |sink|
      sink.sync = true
      while (elapsed = monotonic - began) < seconds && !File.exist?("#{out}.stop")
        job_id = "r#{accepted}"
        asked = Time.now.to_f
        begin
          Sidekiq::Client.push("class" => Recorded, "args" => [job_id])
        rescue StandardError
          errors += 1
          sleep 0.05
          next
        end
        sink.write(format("%s %.6f\n", job_id, asked))
        accepted += 1
        ahead = accepted / rate - elapsed
        sleep ahead if ahead.positive?
      end
    end
    emit(accepted: accepted, errors: errors)
  when "check"
    n = rest[0].to_i
    emit(ready: true)
    while $stdin.gets
      began = Time.now.to_f
      stats = Sidekiq::Stats.new
      left = [n - stats.processed, 0].max
      emit(t: began, missing: left, sample: ((n - left)...n).first(5).map { |i| "b#{i}" },
           failed: stats.failed)
    end
  else
    abort "unknown command #{command.inspect}"
  end
end
