using Silk.NET.Core.Native;
using Silk.NET.Vulkan;
using Buffer = Silk.NET.Vulkan.Buffer;

namespace VirtioGpuHost.Compositor.Rendering.Vulkan.Native;

/// <summary>One chunk of a pass: TileCount tile records at word TileOffset (the first SimpleCount for the SIMPLE pipeline, the rest for the general one: one dispatch each), its calls (the uniform block) at word CallOffset, reading the textures in Slots (see shaders/vulkan/composite.comp).</summary>
internal readonly record struct DispatchChunk(int TileOffset, int TileCount, int SimpleCount, int CallOffset, GpuBuffer[] Slots, int SlotCount);

/// <summary>The pass's target size.</summary>
internal readonly record struct PassLayout(int Width, int Height);

/// <summary>
/// Every Vulkan call of the renderer (Silk.NET.Vulkan; extension entry points through
/// vkGetDeviceProcAddr): instance, device, the composite compute pipeline, storage buffers
/// (allocated host-visible, or imported host pointers), and synchronous pass execution. Every
/// failing VkResult marks the device lost and throws <see cref="RendererLostException"/>.
/// </summary>
internal sealed unsafe class VulkanDevice : IDisposable
{
    /// <summary>Texture bindings per dispatch (the shader's MAX_TEXTURES).</summary>
    public const int MaxTextures = 16;

    private const ulong FenceTimeoutNs = 10_000_000_000; // 10 s: a frame that long is a hung device

    private readonly Lock _gate = new();
    private readonly Vk _vk;
    private Instance _instance;
    private Device _device;
    private Queue _queue;
    private uint _queueFamily;
    private PhysicalDevice _physical;
    private IReadOnlyList<string> _wantedInstanceExtensions = [];
    private PhysicalDeviceMemoryProperties _memory;
    private delegate* unmanaged<Device, ExternalMemoryHandleTypeFlags, void*, MemoryHostPointerPropertiesEXT*, Result> _getHostPointerProperties;
    private ShaderModule _shader;
    private DescriptorSetLayout _setLayout;
    private PipelineLayout _pipelineLayout;
    private Pipeline _pipeline, _simplePipeline;
    private DescriptorPool _pool;
    private readonly List<DescriptorSet> _sets = new();
    private CommandPool _commandPool;
    private CommandBuffer _commands;
    private Fence _fence;
    private GpuBuffer? _dummy, _params;
    private readonly HashSet<GpuBuffer> _live = new();
    private Result _injected = Result.Success;
    private int _injectAfter;
    private bool _disposed;

    private VulkanDevice(Vk vk) => _vk = vk;

    public string Name { get; private set; } = "";
    public string Details { get; private set; } = "";

    /// <summary>VK_EXT_external_memory_host's minImportedHostPointerAlignment; 0 when host pointers cannot be imported.</summary>
    public ulong HostImportAlignment { get; private set; }

    /// <summary>The largest storage buffer a descriptor can address.</summary>
    public ulong MaxBufferRange { get; private set; }

    public bool IsLost { get; private set; }

    /// <summary>Buffers not yet freed (targets, textures, imports, the device's own).</summary>
    public int LiveBuffers
    {
        get { lock (_gate) return _live.Count; }
    }

    /// <summary>Tests: the <paramref name="after"/>-th next checked Vulkan call returns <paramref name="result"/> instead.</summary>
    public void InjectFailure(Result result, int after = 0)
    {
        lock (_gate)
        {
            _injected = result;
            _injectAfter = after;
        }
    }

    public static VulkanDevice? TryCreate(ReadOnlySpan<byte> spirv, string? preferredDevice, out string reason, IReadOnlyList<string>? instanceExtensions = null)
    {
        Vk vk;
        try
        {
            vk = Vk.GetApi();
        }
        catch (Exception e)
        {
            reason = $"no Vulkan loader (libvulkan.so.1): {e.GetType().Name}: {e.Message}";
            return null;
        }
        var device = new VulkanDevice(vk) { _wantedInstanceExtensions = instanceExtensions ?? [] };
        try
        {
            reason = device.Initialise(spirv, preferredDevice);
            if (reason.Length == 0) return device;
        }
        catch (Exception e)
        {
            reason = $"Vulkan initialisation failed: {e.Message}";
        }
        device.Dispose();
        return null;
    }

    private string Initialise(ReadOnlySpan<byte> spirv, string? preferredDevice)
    {
        var appName = (byte*)SilkMarshal.StringToPtr("virtio-gpu-host");
        try
        {
            var app = new ApplicationInfo { SType = StructureType.ApplicationInfo, PApplicationName = appName, ApiVersion = Vk.Version12 };
            var instanceExts = AvailableInstanceExtensions(_wantedInstanceExtensions);
            var ppInstExt = (byte**)SilkMarshal.StringArrayToPtr(instanceExts);
            try
            {
                var ici = new InstanceCreateInfo
                {
                    SType = StructureType.InstanceCreateInfo, PApplicationInfo = &app,
                    EnabledExtensionCount = (uint)instanceExts.Length, PpEnabledExtensionNames = ppInstExt,
                };
                Instance instance;
                var r = _vk.CreateInstance(&ici, null, &instance);
                if (r != Result.Success) return $"vkCreateInstance failed: {r}";
                _instance = instance;
                InstanceExtensions = instanceExts;
            }
            finally
            {
                SilkMarshal.Free((nint)ppInstExt);
            }
        }
        finally
        {
            SilkMarshal.Free((nint)appName);
        }

        uint count = 0;
        _vk.EnumeratePhysicalDevices(_instance, &count, null);
        if (count == 0) return "no Vulkan physical device (install mesa-vulkan-drivers for lavapipe)";
        var devices = new PhysicalDevice[count];
        fixed (PhysicalDevice* p = devices) _vk.EnumeratePhysicalDevices(_instance, &count, p);

        // Prefer the named device, else a real GPU, else whatever there is (lavapipe).
        var candidates = new List<(PhysicalDevice Device, string Name, int Rank, PhysicalDeviceProperties Props)>();
        foreach (var pd in devices)
        {
            PhysicalDeviceProperties props;
            _vk.GetPhysicalDeviceProperties(pd, &props);
            string name = SilkMarshal.PtrToString((nint)props.DeviceName) ?? "?";
            int rank = preferredDevice is { Length: > 0 } && name.Contains(preferredDevice, StringComparison.OrdinalIgnoreCase) ? 0
                : props.DeviceType switch { PhysicalDeviceType.DiscreteGpu => 1, PhysicalDeviceType.IntegratedGpu => 2, PhysicalDeviceType.VirtualGpu => 3, _ => 4 };
            candidates.Add((pd, name, rank, props));
        }
        var failures = new List<string>();
        foreach (var c in candidates.OrderBy(c => c.Rank))
        {
            string why = TryOpen(c.Device, c.Props, spirv);
            if (why.Length == 0)
            {
                Name = c.Name;
                return "";
            }
            failures.Add($"{c.Name}: {why}");
        }
        return "no usable Vulkan device: " + string.Join("; ", failures);
    }

    private string TryOpen(PhysicalDevice pd, PhysicalDeviceProperties props, ReadOnlySpan<byte> spirv)
    {
        if (props.Limits.MaxPerStageDescriptorStorageBuffers < MaxTextures + 2) return $"only {props.Limits.MaxPerStageDescriptorStorageBuffers} storage buffers per stage";
        PhysicalDeviceFeatures features;
        _vk.GetPhysicalDeviceFeatures(pd, &features);
        if (!features.ShaderStorageBufferArrayDynamicIndexing) return "no shaderStorageBufferArrayDynamicIndexing";
        // the shader reads its parameters through an R32_UINT uniform texel buffer (gathers on lavapipe)
        if (props.Limits.MaxUniformBufferRange < 65536) return $"uniform buffers limited to {props.Limits.MaxUniformBufferRange} bytes";

        uint qn = 0;
        _vk.GetPhysicalDeviceQueueFamilyProperties(pd, &qn, null);
        var families = new QueueFamilyProperties[qn];
        fixed (QueueFamilyProperties* q = families) _vk.GetPhysicalDeviceQueueFamilyProperties(pd, &qn, q);
        int family = Array.FindIndex(families, f => (f.QueueFlags & QueueFlags.ComputeBit) != 0);
        if (family < 0) return "no compute queue";

        uint en = 0;
        _vk.EnumerateDeviceExtensionProperties(pd, (byte*)null, &en, null);
        var exts = new ExtensionProperties[en];
        fixed (ExtensionProperties* pe = exts) _vk.EnumerateDeviceExtensionProperties(pd, (byte*)null, &en, pe);
        bool hostImport = false, swapchain = false;
        for (int i = 0; i < en; i++)
        {
            var e = exts[i];
            string? extName = SilkMarshal.PtrToString((nint)e.ExtensionName);
            if (extName == "VK_EXT_external_memory_host") hostImport = true;
            if (extName == "VK_KHR_swapchain") swapchain = true;
        }
        // Window presentation (VulkanPresenter): only when the instance has VK_KHR_surface.
        swapchain &= InstanceExtensions.Contains("VK_KHR_surface");
        ulong alignment = 0;
        if (hostImport)
        {
            var hostProps = new PhysicalDeviceExternalMemoryHostPropertiesEXT { SType = StructureType.PhysicalDeviceExternalMemoryHostPropertiesExt };
            var p2 = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = &hostProps };
            _vk.GetPhysicalDeviceProperties2(pd, &p2);
            alignment = hostProps.MinImportedHostPointerAlignment;
            hostImport = alignment is > 0 and <= 1 << 20 && (alignment & (alignment - 1)) == 0;
        }

        float priority = 1f;
        var qci = new DeviceQueueCreateInfo { SType = StructureType.DeviceQueueCreateInfo, QueueFamilyIndex = (uint)family, QueueCount = 1, PQueuePriorities = &priority };
        var enable = new PhysicalDeviceFeatures { ShaderStorageBufferArrayDynamicIndexing = true };
        var extNames = (hostImport ? new[] { "VK_EXT_external_memory_host" } : []).Concat(swapchain ? ["VK_KHR_swapchain"] : Array.Empty<string>()).ToArray();
        var ppExt = (byte**)SilkMarshal.StringArrayToPtr(extNames);
        try
        {
            var dci = new DeviceCreateInfo
            {
                SType = StructureType.DeviceCreateInfo, QueueCreateInfoCount = 1, PQueueCreateInfos = &qci, PEnabledFeatures = &enable,
                EnabledExtensionCount = (uint)extNames.Length, PpEnabledExtensionNames = ppExt,
            };
            Device device;
            var r = _vk.CreateDevice(pd, &dci, null, &device);
            if (r != Result.Success) return $"vkCreateDevice failed: {r}";
            _device = device;
        }
        finally
        {
            SilkMarshal.Free((nint)ppExt);
        }
        _queueFamily = (uint)family;
        _physical = pd;
        SwapchainEnabled = swapchain;
        Queue queue;
        _vk.GetDeviceQueue(_device, _queueFamily, 0, &queue);
        _queue = queue;
        PhysicalDeviceMemoryProperties memory;
        _vk.GetPhysicalDeviceMemoryProperties(pd, &memory);
        _memory = memory;
        MaxBufferRange = Math.Min(props.Limits.MaxStorageBufferRange, (ulong)props.Limits.MaxTexelBufferElements * 4);
        if (hostImport)
        {
            _getHostPointerProperties = (delegate* unmanaged<Device, ExternalMemoryHandleTypeFlags, void*, MemoryHostPointerPropertiesEXT*, Result>)
                (nint)_vk.GetDeviceProcAddr(_device, "vkGetMemoryHostPointerPropertiesEXT");
            HostImportAlignment = _getHostPointerProperties != null ? alignment : 0;
        }
        CreatePipeline(spirv);
        Details = $"{SilkMarshal.PtrToString((nint)props.DeviceName)} ({props.DeviceType}, Vulkan {props.ApiVersion >> 22}.{(props.ApiVersion >> 12) & 0x3FF})"
            + (HostImportAlignment > 0 ? $", host-pointer import (alignment {HostImportAlignment})" : ", no host-pointer import (surfaces copied)");
        return "";
    }

    private void CreatePipeline(ReadOnlySpan<byte> spirv)
    {
        fixed (byte* code = spirv)
        {
            var smci = new ShaderModuleCreateInfo { SType = StructureType.ShaderModuleCreateInfo, CodeSize = (nuint)spirv.Length, PCode = (uint*)code };
            ShaderModule module;
            Check(_vk.CreateShaderModule(_device, &smci, null, &module), "vkCreateShaderModule");
            _shader = module;
        }
        var bindings = stackalloc DescriptorSetLayoutBinding[5];
        bindings[0] = new DescriptorSetLayoutBinding { Binding = 0, DescriptorType = DescriptorType.StorageBuffer, DescriptorCount = 1, StageFlags = ShaderStageFlags.ComputeBit };
        bindings[1] = new DescriptorSetLayoutBinding { Binding = 1, DescriptorType = DescriptorType.UniformTexelBuffer, DescriptorCount = 1, StageFlags = ShaderStageFlags.ComputeBit };
        bindings[2] = new DescriptorSetLayoutBinding { Binding = 2, DescriptorType = DescriptorType.StorageBuffer, DescriptorCount = MaxTextures, StageFlags = ShaderStageFlags.ComputeBit };
        bindings[3] = new DescriptorSetLayoutBinding { Binding = 3, DescriptorType = DescriptorType.UniformBuffer, DescriptorCount = 1, StageFlags = ShaderStageFlags.ComputeBit };
        bindings[4] = new DescriptorSetLayoutBinding { Binding = 4, DescriptorType = DescriptorType.UniformTexelBuffer, DescriptorCount = 1, StageFlags = ShaderStageFlags.ComputeBit };
        var dslci = new DescriptorSetLayoutCreateInfo { SType = StructureType.DescriptorSetLayoutCreateInfo, BindingCount = 5, PBindings = bindings };
        DescriptorSetLayout setLayout;
        Check(_vk.CreateDescriptorSetLayout(_device, &dslci, null, &setLayout), "vkCreateDescriptorSetLayout");
        _setLayout = setLayout;
        var range = new PushConstantRange { StageFlags = ShaderStageFlags.ComputeBit, Offset = 0, Size = 9 * 4 };
        var plci = new PipelineLayoutCreateInfo { SType = StructureType.PipelineLayoutCreateInfo, SetLayoutCount = 1, PSetLayouts = &setLayout, PushConstantRangeCount = 1, PPushConstantRanges = &range };
        PipelineLayout pipelineLayout;
        Check(_vk.CreatePipelineLayout(_device, &plci, null, &pipelineLayout), "vkCreatePipelineLayout");
        _pipelineLayout = pipelineLayout;
        var main = (byte*)SilkMarshal.StringToPtr("main");
        try
        {
            // two pipelines: constant_id 0 (SIMPLE) false = general, true = whole-tile 1:1 calls only
            for (int simple = 0; simple < 2; simple++)
            {
                uint value = (uint)simple;
                var entry = new SpecializationMapEntry { ConstantID = 0, Offset = 0, Size = 4 };
                var spec = new SpecializationInfo { MapEntryCount = 1, PMapEntries = &entry, DataSize = 4, PData = &value };
                var stage = new PipelineShaderStageCreateInfo { SType = StructureType.PipelineShaderStageCreateInfo, Stage = ShaderStageFlags.ComputeBit, Module = _shader, PName = main, PSpecializationInfo = &spec };
                var cpci = new ComputePipelineCreateInfo { SType = StructureType.ComputePipelineCreateInfo, Stage = stage, Layout = _pipelineLayout };
                Pipeline pipeline;
                Check(_vk.CreateComputePipelines(_device, default, 1, &cpci, null, &pipeline), "vkCreateComputePipelines");
                if (simple == 0) _pipeline = pipeline;
                else _simplePipeline = pipeline;
            }
        }
        finally
        {
            SilkMarshal.Free((nint)main);
        }
        var sizes = stackalloc DescriptorPoolSize[3];
        sizes[0] = new DescriptorPoolSize(DescriptorType.StorageBuffer, 64 * (MaxTextures + 1));
        sizes[1] = new DescriptorPoolSize(DescriptorType.UniformTexelBuffer, 2 * 64);
        sizes[2] = new DescriptorPoolSize(DescriptorType.UniformBuffer, 64);
        var dpci = new DescriptorPoolCreateInfo { SType = StructureType.DescriptorPoolCreateInfo, MaxSets = 64, PoolSizeCount = 3, PPoolSizes = sizes };
        DescriptorPool pool;
        Check(_vk.CreateDescriptorPool(_device, &dpci, null, &pool), "vkCreateDescriptorPool");
        _pool = pool;
        var cpoolci = new CommandPoolCreateInfo { SType = StructureType.CommandPoolCreateInfo, QueueFamilyIndex = _queueFamily, Flags = CommandPoolCreateFlags.ResetCommandBufferBit };
        CommandPool commandPool;
        Check(_vk.CreateCommandPool(_device, &cpoolci, null, &commandPool), "vkCreateCommandPool");
        _commandPool = commandPool;
        var cbai = new CommandBufferAllocateInfo { SType = StructureType.CommandBufferAllocateInfo, CommandPool = _commandPool, Level = CommandBufferLevel.Primary, CommandBufferCount = 1 };
        CommandBuffer commands;
        Check(_vk.AllocateCommandBuffers(_device, &cbai, &commands), "vkAllocateCommandBuffers");
        _commands = commands;
        var fci = new FenceCreateInfo { SType = StructureType.FenceCreateInfo };
        Fence fence;
        Check(_vk.CreateFence(_device, &fci, null, &fence), "vkCreateFence");
        _fence = fence;
        lock (_gate) _dummy = AllocateLocked(256);
    }

    // ---- buffers ----

    /// <summary>A host-visible, coherent, mapped storage buffer of at least <paramref name="size"/> bytes.</summary>
    public GpuBuffer Allocate(ulong size)
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            return AllocateLocked(size);
        }
    }

    private GpuBuffer AllocateLocked(ulong size)
    {
        size = Math.Max(16, (size + 15) & ~15UL);
        if (size > MaxBufferRange) throw new ArgumentOutOfRangeException(nameof(size), size, $"above the device's storage buffer range {MaxBufferRange}");
        // Transfer source too: a window presenter copies a target straight into a swapchain image.
        var bci = new BufferCreateInfo { SType = StructureType.BufferCreateInfo, Size = size, Usage = BufferUsageFlags.StorageBufferBit | BufferUsageFlags.UniformTexelBufferBit | BufferUsageFlags.UniformBufferBit | BufferUsageFlags.TransferSrcBit, SharingMode = SharingMode.Exclusive };
        Buffer buffer;
        Check(_vk.CreateBuffer(_device, &bci, null, &buffer), "vkCreateBuffer");
        MemoryRequirements req;
        _vk.GetBufferMemoryRequirements(_device, buffer, &req);
        int type = MemoryType(req.MemoryTypeBits, MemoryPropertyFlags.HostVisibleBit | MemoryPropertyFlags.HostCoherentBit, MemoryPropertyFlags.DeviceLocalBit);
        if (type < 0)
        {
            _vk.DestroyBuffer(_device, buffer, null);
            throw Lost("no host-visible coherent memory type for a storage buffer", Result.ErrorFeatureNotPresent);
        }
        var mai = new MemoryAllocateInfo { SType = StructureType.MemoryAllocateInfo, AllocationSize = req.Size, MemoryTypeIndex = (uint)type };
        DeviceMemory memory;
        var r = Inject(_vk.AllocateMemory(_device, &mai, null, &memory));
        if (r != Result.Success)
        {
            _vk.DestroyBuffer(_device, buffer, null);
            throw Lost("vkAllocateMemory", r);
        }
        void* mapped;
        r = _vk.BindBufferMemory(_device, buffer, memory, 0);
        if (r == Result.Success) r = _vk.MapMemory(_device, memory, 0, Vk.WholeSize, 0, &mapped);
        else mapped = null;
        if (r != Result.Success)
        {
            _vk.DestroyBuffer(_device, buffer, null);
            _vk.FreeMemory(_device, memory, null);
            throw Lost("vkBindBufferMemory/vkMapMemory", r);
        }
        var b = new GpuBuffer(buffer, memory, size, (nint)mapped, imported: false);
        _live.Add(b);
        return b;
    }

    /// <summary>
    /// Imports <paramref name="size"/> bytes of host memory at <paramref name="address"/> (both
    /// multiples of <see cref="HostImportAlignment"/>) as a storage buffer, without a copy; null
    /// when the device refuses this memory (the caller copies instead).
    /// </summary>
    public GpuBuffer? Import(nint address, ulong size)
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            ulong a = HostImportAlignment;
            if (a == 0 || (ulong)address % a != 0 || size % a != 0 || size == 0 || size > MaxBufferRange) return null;
            var hp = new MemoryHostPointerPropertiesEXT { SType = StructureType.MemoryHostPointerPropertiesExt };
            var r = Inject(_getHostPointerProperties(_device, ExternalMemoryHandleTypeFlags.HostAllocationBitExt, (void*)address, &hp));
            if (r == Result.ErrorDeviceLost) throw Lost("vkGetMemoryHostPointerPropertiesEXT", r);
            if (r != Result.Success) return null;
            var ext = new ExternalMemoryBufferCreateInfo { SType = StructureType.ExternalMemoryBufferCreateInfo, HandleTypes = ExternalMemoryHandleTypeFlags.HostAllocationBitExt };
            var bci = new BufferCreateInfo { SType = StructureType.BufferCreateInfo, PNext = &ext, Size = size, Usage = BufferUsageFlags.StorageBufferBit, SharingMode = SharingMode.Exclusive };
            Buffer buffer;
            r = _vk.CreateBuffer(_device, &bci, null, &buffer);
            if (r == Result.ErrorDeviceLost) throw Lost("vkCreateBuffer", r);
            if (r != Result.Success) return null;
            MemoryRequirements req;
            _vk.GetBufferMemoryRequirements(_device, buffer, &req);
            int type = MemoryType(req.MemoryTypeBits & hp.MemoryTypeBits, MemoryPropertyFlags.HostVisibleBit, 0);
            if (type < 0 || req.Size > size)
            {
                _vk.DestroyBuffer(_device, buffer, null);
                return null;
            }
            var imp = new ImportMemoryHostPointerInfoEXT { SType = StructureType.ImportMemoryHostPointerInfoExt, HandleType = ExternalMemoryHandleTypeFlags.HostAllocationBitExt, PHostPointer = (void*)address };
            var mai = new MemoryAllocateInfo { SType = StructureType.MemoryAllocateInfo, PNext = &imp, AllocationSize = size, MemoryTypeIndex = (uint)type };
            DeviceMemory memory;
            r = _vk.AllocateMemory(_device, &mai, null, &memory);
            if (r == Result.Success) r = _vk.BindBufferMemory(_device, buffer, memory, 0);
            else memory = default;
            if (r != Result.Success)
            {
                _vk.DestroyBuffer(_device, buffer, null);
                if (memory.Handle != 0) _vk.FreeMemory(_device, memory, null);
                if (r == Result.ErrorDeviceLost) throw Lost("vkAllocateMemory (host pointer)", r);
                return null;
            }
            var b = new GpuBuffer(buffer, memory, size, address, imported: true);
            _live.Add(b);
            return b;
        }
    }

    public void Free(GpuBuffer? buffer)
    {
        if (buffer is null) return;
        lock (_gate)
        {
            if (buffer.IsFreed || !_live.Remove(buffer)) return;
            FreeLocked(buffer);
        }
    }

    private void FreeLocked(GpuBuffer buffer)
    {
        // Destroying objects is allowed on a lost device; nothing is in flight (passes wait).
        if (buffer.View.Handle != 0) _vk.DestroyBufferView(_device, buffer.View, null);
        if (buffer.QuadView.Handle != 0) _vk.DestroyBufferView(_device, buffer.QuadView, null);
        _vk.DestroyBuffer(_device, buffer.Handle, null);
        _vk.FreeMemory(_device, buffer.Memory, null);
        buffer.MarkFreed();
    }

    private int MemoryType(uint bits, MemoryPropertyFlags required, MemoryPropertyFlags preferred)
    {
        int found = -1;
        for (int i = 0; i < _memory.MemoryTypeCount; i++)
        {
            if ((bits & (1u << i)) == 0) continue;
            var flags = _memory.MemoryTypes[i].PropertyFlags;
            if ((flags & required) != required) continue;
            if ((flags & preferred) == preferred) return i;
            if (found < 0) found = i;
        }
        return found;
    }

    // ---- passes ----

    /// <summary>
    /// Runs a pass: <paramref name="parameters"/> into the parameter buffer, one dispatch per
    /// chunk over the layout's tiles (in order, each seeing the previous one's writes), then
    /// waits for it, so the target's memory holds the frame on return.
    /// </summary>
    public void Execute(GpuBuffer target, ReadOnlySpan<int> parameters, in PassLayout layout, ReadOnlySpan<DispatchChunk> chunks)
    {
        lock (_gate)
        {
            ThrowIfUnusable();
            if (target.IsFreed) throw new ObjectDisposedException(nameof(GpuBuffer));
            ulong bytes = (ulong)parameters.Length * 4;
            if (_params is null || _params.Size < bytes)
            {
                if (_params is not null)
                {
                    _live.Remove(_params);
                    FreeLocked(_params);
                    _params = null;
                }
                _params = AllocateLocked(Math.Max(bytes * 3 / 2, 64 * 1024));
            }
            parameters.CopyTo(new Span<int>((void*)_params.Mapped, parameters.Length));

            while (_sets.Count < chunks.Length)
            {
                var setLayout = _setLayout;
                var dsai = new DescriptorSetAllocateInfo { SType = StructureType.DescriptorSetAllocateInfo, DescriptorPool = _pool, DescriptorSetCount = 1, PSetLayouts = &setLayout };
                DescriptorSet set;
                Check(_vk.AllocateDescriptorSets(_device, &dsai, &set), "vkAllocateDescriptorSets");
                _sets.Add(set);
            }
            var infos = stackalloc DescriptorBufferInfo[MaxTextures + 2];
            var view = stackalloc BufferView[2];
            var writes = stackalloc WriteDescriptorSet[5];
            for (int c = 0; c < chunks.Length; c++)
            {
                infos[0] = new DescriptorBufferInfo(target.Handle, 0, Vk.WholeSize);
                ulong callBytes = (ulong)chunks[c].CallOffset * 4;
                infos[1] = new DescriptorBufferInfo(_params.Handle, callBytes, Math.Min(65536UL, _params.Size - callBytes));
                view[0] = TexelView(_params);
                view[1] = QuadView(_params);
                for (int s = 0; s < MaxTextures; s++)
                {
                    var b = s < chunks[c].SlotCount ? chunks[c].Slots[s] : _dummy!;
                    if (b.IsFreed) throw new ObjectDisposedException("texture");
                    infos[2 + s] = new DescriptorBufferInfo(b.Handle, 0, Vk.WholeSize);
                }
                writes[0] = new WriteDescriptorSet { SType = StructureType.WriteDescriptorSet, DstSet = _sets[c], DstBinding = 0, DescriptorCount = 1, DescriptorType = DescriptorType.StorageBuffer, PBufferInfo = infos };
                writes[1] = new WriteDescriptorSet { SType = StructureType.WriteDescriptorSet, DstSet = _sets[c], DstBinding = 1, DescriptorCount = 1, DescriptorType = DescriptorType.UniformTexelBuffer, PTexelBufferView = view };
                writes[2] = new WriteDescriptorSet { SType = StructureType.WriteDescriptorSet, DstSet = _sets[c], DstBinding = 2, DescriptorCount = MaxTextures, DescriptorType = DescriptorType.StorageBuffer, PBufferInfo = infos + 2 };
                writes[3] = new WriteDescriptorSet { SType = StructureType.WriteDescriptorSet, DstSet = _sets[c], DstBinding = 3, DescriptorCount = 1, DescriptorType = DescriptorType.UniformBuffer, PBufferInfo = infos + 1 };
                writes[4] = new WriteDescriptorSet { SType = StructureType.WriteDescriptorSet, DstSet = _sets[c], DstBinding = 4, DescriptorCount = 1, DescriptorType = DescriptorType.UniformTexelBuffer, PTexelBufferView = view + 1 };
                _vk.UpdateDescriptorSets(_device, 5, writes, 0, null);
            }

            Check(_vk.ResetCommandBuffer(_commands, 0), "vkResetCommandBuffer");
            var begin = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
            Check(_vk.BeginCommandBuffer(_commands, &begin), "vkBeginCommandBuffer");
            var toHost = new MemoryBarrier { SType = StructureType.MemoryBarrier, SrcAccessMask = AccessFlags.HostWriteBit, DstAccessMask = AccessFlags.ShaderReadBit | AccessFlags.ShaderWriteBit };
            _vk.CmdPipelineBarrier(_commands, PipelineStageFlags.HostBit, PipelineStageFlags.ComputeShaderBit, 0, 1, &toHost, 0, null, 0, null);
            var constants = stackalloc int[9];
            for (int c = 0; c < chunks.Length; c++)
            {
                if (c > 0)
                {
                    var between = new MemoryBarrier { SType = StructureType.MemoryBarrier, SrcAccessMask = AccessFlags.ShaderWriteBit, DstAccessMask = AccessFlags.ShaderReadBit | AccessFlags.ShaderWriteBit };
                    _vk.CmdPipelineBarrier(_commands, PipelineStageFlags.ComputeShaderBit, PipelineStageFlags.ComputeShaderBit, 0, 1, &between, 0, null, 0, null);
                }
                var set = _sets[c];
                _vk.CmdBindDescriptorSets(_commands, PipelineBindPoint.Compute, _pipelineLayout, 0, 1, &set, 0, null);
                constants[0] = layout.Width;
                constants[1] = layout.Height;
                // the SIMPLE tiles, then the general ones (disjoint tiles: no barrier between them)
                for (int simple = 1; simple >= 0; simple--)
                {
                    int count = simple == 1 ? chunks[c].SimpleCount : chunks[c].TileCount - chunks[c].SimpleCount;
                    if (count == 0) continue;
                    _vk.CmdBindPipeline(_commands, PipelineBindPoint.Compute, simple == 1 ? _simplePipeline : _pipeline);
                    constants[2] = chunks[c].TileOffset + (simple == 1 ? 0 : chunks[c].SimpleCount * 4);
                    constants[3] = count;
                    _vk.CmdPushConstants(_commands, _pipelineLayout, ShaderStageFlags.ComputeBit, 0, 9 * 4, constants);
                    uint groupsX = (uint)Math.Min(count, 65535), groupsY = (uint)((count + 65534) / 65535);
                    _vk.CmdDispatch(_commands, groupsX, groupsY, 1);
                }
            }
            var done = new MemoryBarrier { SType = StructureType.MemoryBarrier, SrcAccessMask = AccessFlags.ShaderWriteBit, DstAccessMask = AccessFlags.HostReadBit };
            _vk.CmdPipelineBarrier(_commands, PipelineStageFlags.ComputeShaderBit, PipelineStageFlags.HostBit, 0, 1, &done, 0, null, 0, null);
            Check(_vk.EndCommandBuffer(_commands), "vkEndCommandBuffer");

            var commands = _commands;
            var submit = new SubmitInfo { SType = StructureType.SubmitInfo, CommandBufferCount = 1, PCommandBuffers = &commands };
            Check(_vk.QueueSubmit(_queue, 1, &submit, _fence), "vkQueueSubmit");
            var fence = _fence;
            var wait = Inject(_vk.WaitForFences(_device, 1, &fence, true, FenceTimeoutNs));
            if (wait == Result.Timeout) throw Lost("vkWaitForFences (the frame took over 10 s)", Result.ErrorDeviceLost);
            Check(wait, "vkWaitForFences");
            Check(_vk.ResetFences(_device, 1, &fence), "vkResetFences");
        }
    }

    // ---- window presentation (VulkanPresenter, Native/VulkanSwapchain.cs) ----

    internal Vk Api => _vk;
    internal Instance InstanceHandle => _instance;
    internal PhysicalDevice PhysicalDeviceHandle => _physical;
    internal Device DeviceHandle => _device;
    internal Queue QueueHandle => _queue;
    internal uint QueueFamily => _queueFamily;

    /// <summary>Held around every use of the queue (submits, presents) and while a pass runs.</summary>
    internal Lock Gate => _gate;

    /// <summary>The instance extensions enabled (those asked for in the options that the loader has).</summary>
    internal IReadOnlyList<string> InstanceExtensions { get; private set; } = [];

    /// <summary>VK_KHR_swapchain is enabled on the device (asked for through VK_KHR_surface on the instance).</summary>
    internal bool SwapchainEnabled { get; private set; }

    /// <summary>Raised at the start of <see cref="Dispose"/>: presenters free their swapchains and surfaces.</summary>
    internal event Action? Disposing;

    internal int FindMemoryType(uint bits, MemoryPropertyFlags required, MemoryPropertyFlags preferred) => MemoryType(bits, required, preferred);

    private string[] AvailableInstanceExtensions(IReadOnlyList<string> wanted)
    {
        if (wanted.Count == 0) return [];
        uint n = 0;
        _vk.EnumerateInstanceExtensionProperties((byte*)null, &n, null);
        var props = new ExtensionProperties[n];
        fixed (ExtensionProperties* p = props) _vk.EnumerateInstanceExtensionProperties((byte*)null, &n, p);
        var have = new HashSet<string>();
        for (int i = 0; i < n; i++)
        {
            var e = props[i];
            if (SilkMarshal.PtrToString((nint)e.ExtensionName) is { } name) have.Add(name);
        }
        return wanted.Where(have.Contains).Distinct().ToArray();
    }

    /// <summary>The buffer's R32G32B32A32_UINT texel view (created on first use, destroyed with the buffer).</summary>
    private BufferView QuadView(GpuBuffer buffer)
    {
        if (buffer.QuadView.Handle != 0) return buffer.QuadView;
        var bvci = new BufferViewCreateInfo { SType = StructureType.BufferViewCreateInfo, Buffer = buffer.Handle, Format = Format.R32G32B32A32Uint, Offset = 0, Range = Vk.WholeSize };
        BufferView view;
        Check(_vk.CreateBufferView(_device, &bvci, null, &view), "vkCreateBufferView");
        buffer.QuadView = view;
        return view;
    }

    /// <summary>The buffer's R32_UINT texel view (created on first use, destroyed with the buffer).</summary>
    private BufferView TexelView(GpuBuffer buffer)
    {
        if (buffer.View.Handle != 0) return buffer.View;
        var bvci = new BufferViewCreateInfo { SType = StructureType.BufferViewCreateInfo, Buffer = buffer.Handle, Format = Format.R32Uint, Offset = 0, Range = Vk.WholeSize };
        BufferView view;
        Check(_vk.CreateBufferView(_device, &bvci, null, &view), "vkCreateBufferView");
        buffer.View = view;
        return view;
    }

    // ---- errors ----

    private Result Inject(Result r)
    {
        if (_injected == Result.Success || r != Result.Success) return r;
        if (_injectAfter-- > 0) return r;
        var injected = _injected;
        _injected = Result.Success;
        return injected;
    }

    private void Check(Result r, string what)
    {
        r = Inject(r);
        if (r != Result.Success) throw Lost(what, r);
    }

    private RendererLostException Lost(string what, Result r)
    {
        IsLost = true;
        return new RendererLostException($"vulkan: {what} failed: {r}; the Vulkan renderer is lost");
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsLost) throw new RendererLostException("vulkan: the device was lost earlier; the Vulkan renderer is unusable");
    }

    public void Dispose()
    {
        // Window presenters first: their swapchains and surfaces must go before the device and instance.
        if (!_disposed) Disposing?.Invoke();
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            if (_device.Handle != 0)
            {
                _vk.DeviceWaitIdle(_device); // result ignored: a lost device still lets us destroy
                foreach (var b in _live) FreeLocked(b);
                _live.Clear();
                if (_fence.Handle != 0) _vk.DestroyFence(_device, _fence, null);
                if (_commandPool.Handle != 0) _vk.DestroyCommandPool(_device, _commandPool, null);
                if (_pool.Handle != 0) _vk.DestroyDescriptorPool(_device, _pool, null);
                if (_pipeline.Handle != 0) _vk.DestroyPipeline(_device, _pipeline, null);
                if (_simplePipeline.Handle != 0) _vk.DestroyPipeline(_device, _simplePipeline, null);
                if (_pipelineLayout.Handle != 0) _vk.DestroyPipelineLayout(_device, _pipelineLayout, null);
                if (_setLayout.Handle != 0) _vk.DestroyDescriptorSetLayout(_device, _setLayout, null);
                if (_shader.Handle != 0) _vk.DestroyShaderModule(_device, _shader, null);
                _vk.DestroyDevice(_device, null);
                _device = default;
            }
            if (_instance.Handle != 0) _vk.DestroyInstance(_instance, null);
            _instance = default;
            _sets.Clear();
            _vk.Dispose();
        }
    }
}
