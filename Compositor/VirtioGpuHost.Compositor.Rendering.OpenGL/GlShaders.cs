using Silk.NET.OpenGL;

namespace VirtioGpuHost.Compositor.Rendering.OpenGL;

/// <summary>The embedded GLSL of shaders/gl/, compiled and linked by the driver.</summary>
internal static class GlShaders
{
    public static string Source(string name)
    {
        string resource = $"VirtioGpuHost.Compositor.Rendering.OpenGL.Shaders.{name}";
        using var stream = typeof(GlShaders).Assembly.GetManifestResourceStream(resource)
            ?? throw new GlShaderException($"embedded shader {resource} is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    public static uint BuildCompute(GL gl, string name)
    {
        uint shader = gl.CreateShader(ShaderType.ComputeShader);
        try
        {
            gl.ShaderSource(shader, Source(name));
            gl.CompileShader(shader);
            gl.GetShader(shader, ShaderParameterName.CompileStatus, out int compiled);
            if (compiled == 0) throw new GlShaderException($"{name} does not compile: {gl.GetShaderInfoLog(shader)}");
            uint program = gl.CreateProgram();
            gl.AttachShader(program, shader);
            gl.LinkProgram(program);
            gl.DetachShader(program, shader);
            gl.GetProgram(program, ProgramPropertyARB.LinkStatus, out int linked);
            if (linked == 0)
            {
                string log = gl.GetProgramInfoLog(program);
                gl.DeleteProgram(program);
                throw new GlShaderException($"{name} does not link: {log}");
            }
            return program;
        }
        finally
        {
            gl.DeleteShader(shader);
        }
    }
}

/// <summary>A shader of shaders/gl/ failed to compile or link on this driver.</summary>
public sealed class GlShaderException(string message) : Exception(message);
