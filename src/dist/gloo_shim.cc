// The Gloo shim: gloo's context, TCP/ibverbs devices and collective
// algorithms behind the C functions of gloo_shim.h. No exception leaves.
#include "dist/gloo_shim.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/config.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#if GLOO_HAVE_TRANSPORT_IBVERBS
#include <gloo/transport/ibverbs/device.h>
#endif

extern "C" const char *crema_errmsg(void);

namespace {

// gloo's Store over our rendezvous client; keys live under "gloo/".
class ShimStore : public gloo::rendezvous::Store {
  public:
    ShimStore(const gloo_shim_store &s, int timeout_ms) : s_(s), timeout_ms_(timeout_ms) {}

    void set(const std::string &key, const std::vector<char> &data) override
    {
        std::string k = "gloo/" + key;
        if (s_.set(s_.ctx, k.c_str(), data.data(), data.size()) != 0)
            fail();
    }

    std::vector<char> get(const std::string &key) override
    {
        std::string k = "gloo/" + key;
        void *v = nullptr;
        size_t n = 0;
        if (s_.get(s_.ctx, k.c_str(), &v, &n, timeout_ms_) != 0)
            fail();
        std::vector<char> out(static_cast<char *>(v), static_cast<char *>(v) + n);
        std::free(v);
        return out;
    }

    void wait(const std::vector<std::string> &keys) override
    {
        wait(keys, std::chrono::milliseconds(timeout_ms_));
    }

    void wait(const std::vector<std::string> &keys, const std::chrono::milliseconds &timeout) override
    {
        std::vector<std::string> full;
        std::vector<const char *> ptrs;
        for (const auto &k : keys)
            full.push_back("gloo/" + k);
        for (const auto &k : full)
            ptrs.push_back(k.c_str());
        int ms = static_cast<int>(timeout.count());
        if (ms <= 0 || ms > timeout_ms_)
            ms = timeout_ms_;
        if (s_.wait(s_.ctx, ptrs.data(), static_cast<int>(ptrs.size()), ms) != 0)
            fail();
    }

    // The rendezvous message, kept apart from whatever gloo wraps around it.
    std::string error;

  private:
    [[noreturn]] void fail()
    {
        error = crema_errmsg();
        throw std::runtime_error(error);
    }

    gloo_shim_store s_;
    int timeout_ms_;
};

int classify(const std::exception &e)
{
    const char *w = e.what();
    if (std::strstr(w, "Timed out") || std::strstr(w, "timed out") || std::strstr(w, "Timeout"))
        return GLOO_SHIM_TIMEOUT;
    if (dynamic_cast<const gloo::IoException *>(&e))
        return GLOO_SHIM_IO;
    return GLOO_SHIM_OTHER;
}

int report(const std::exception &e, char *err, size_t err_len)
{
    std::snprintf(err, err_len, "%s", e.what());
    return classify(e);
}

} // namespace

struct gloo_shim {
    std::shared_ptr<gloo::rendezvous::Context> context;
    std::chrono::milliseconds timeout;
};

extern "C" int gloo_shim_create(int rank, int size, const struct gloo_shim_store *store, const char *file_dir,
                                const char *hostname, int infiniband, int timeout_ms, struct gloo_shim **out,
                                char *err, size_t err_len)
{
    *out = nullptr;
    std::unique_ptr<ShimStore> ours;
    try {
        std::shared_ptr<gloo::transport::Device> dev;
        if (infiniband) {
#if GLOO_HAVE_TRANSPORT_IBVERBS
            auto names = gloo::transport::ibverbs::getDeviceNames();
            if (names.empty()) {
                std::snprintf(err, err_len,
                              "infiniband: no InfiniBand (ibverbs) device on this host; use -connection ethernet");
                return GLOO_SHIM_OTHER;
            }
            gloo::transport::ibverbs::attr attr;
            attr.name = names[0];
            attr.port = 1;
            attr.index = 0;
            dev = gloo::transport::ibverbs::CreateDevice(attr);
#else
            std::snprintf(err, err_len,
                          "infiniband: this build of Gloo has no ibverbs transport; use -connection ethernet");
            return GLOO_SHIM_OTHER;
#endif
        } else {
            gloo::transport::tcp::attr attr;
            if (hostname && *hostname)
                attr.hostname = hostname;
            dev = gloo::transport::tcp::CreateDevice(attr);
        }
        auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
        context->setTimeout(std::chrono::milliseconds(timeout_ms));
        if (store) {
            ours.reset(new ShimStore(*store, timeout_ms));
            context->connectFullMesh(*ours, dev);
        } else {
            gloo::rendezvous::FileStore fs(file_dir);
            context->connectFullMesh(fs, dev);
        }
        gloo_shim *g = new gloo_shim;
        g->context = context;
        g->timeout = std::chrono::milliseconds(timeout_ms);
        *out = g;
        return GLOO_SHIM_OK;
    } catch (const std::exception &e) {
        if (ours && !ours->error.empty()) {
            std::snprintf(err, err_len, "%s", ours->error.c_str());
            return GLOO_SHIM_IO;
        }
        return report(e, err, err_len);
    } catch (...) {
        std::snprintf(err, err_len, "gloo: unknown failure while connecting");
        return GLOO_SHIM_OTHER;
    }
}

extern "C" void gloo_shim_free(struct gloo_shim *g)
{
    try {
        delete g;
    } catch (...) {
        // a peer that is already gone can make teardown throw; nothing to do
    }
}

extern "C" int gloo_shim_allreduce_sum(struct gloo_shim *g, float *buf, size_t n, uint32_t tag, char *err,
                                       size_t err_len)
{
    try {
        gloo::AllreduceOptions opts(g->context);
        opts.setOutput(buf, n);
        opts.setReduceFunction(static_cast<void (*)(void *, const void *, const void *, size_t)>(&gloo::sum<float>));
        opts.setTag(tag);
        opts.setTimeout(g->timeout);
        gloo::allreduce(opts);
        return GLOO_SHIM_OK;
    } catch (const std::exception &e) {
        return report(e, err, err_len);
    } catch (...) {
        std::snprintf(err, err_len, "gloo: unknown failure in allreduce");
        return GLOO_SHIM_OTHER;
    }
}

extern "C" int gloo_shim_broadcast(struct gloo_shim *g, void *buf, size_t bytes, int root, uint32_t tag, char *err,
                                   size_t err_len)
{
    try {
        gloo::BroadcastOptions opts(g->context);
        opts.setOutput(static_cast<char *>(buf), bytes);
        opts.setRoot(root);
        opts.setTag(tag);
        opts.setTimeout(g->timeout);
        gloo::broadcast(opts);
        return GLOO_SHIM_OK;
    } catch (const std::exception &e) {
        return report(e, err, err_len);
    } catch (...) {
        std::snprintf(err, err_len, "gloo: unknown failure in broadcast");
        return GLOO_SHIM_OTHER;
    }
}

extern "C" int gloo_shim_barrier(struct gloo_shim *g, uint32_t tag, char *err, size_t err_len)
{
    try {
        gloo::BarrierOptions opts(g->context);
        opts.setTag(tag);
        opts.setTimeout(g->timeout);
        gloo::barrier(opts);
        return GLOO_SHIM_OK;
    } catch (const std::exception &e) {
        return report(e, err, err_len);
    } catch (...) {
        std::snprintf(err, err_len, "gloo: unknown failure in barrier");
        return GLOO_SHIM_OTHER;
    }
}

extern "C" int gloo_shim_allgather(struct gloo_shim *g, const void *send, size_t bytes, void *recv, uint32_t tag,
                                   char *err, size_t err_len)
{
    try {
        gloo::AllgatherOptions opts(g->context);
        // gloo reads the input and never writes it
        opts.setInput(const_cast<char *>(static_cast<const char *>(send)), bytes);
        opts.setOutput(static_cast<char *>(recv), bytes * static_cast<size_t>(g->context->size));
        opts.setTag(tag);
        opts.setTimeout(g->timeout);
        gloo::allgather(opts);
        return GLOO_SHIM_OK;
    } catch (const std::exception &e) {
        return report(e, err, err_len);
    } catch (...) {
        std::snprintf(err, err_len, "gloo: unknown failure in allgather");
        return GLOO_SHIM_OTHER;
    }
}
